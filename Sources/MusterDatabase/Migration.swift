import Foundation
import SQLKit

/// One schema step; applied once, in order, inside a transaction, and recorded in `schema_migrations`.
public struct Migration: Sendable {
    public let version: Int
    public let name: String
    public let apply: @Sendable (any SQLDatabase) async throws -> Void

    public init(version: Int, name: String, apply: @escaping @Sendable (any SQLDatabase) async throws -> Void) {
        self.version = version
        self.name = name
        self.apply = apply
    }
}

extension Database {
    /// Applies the steps of `migrations` this database has not had yet, oldest first, each in its own
    /// transaction (on PostgreSQL under an advisory lock, so replicas starting together apply each once).
    public func migrate(_ migrations: [Migration]) async throws {
        try await transaction { [isPostgres] sql in
            if isPostgres { try await sql.raw("SELECT pg_advisory_xact_lock(7244001)").run() }
            try await sql.create(table: "schema_migrations")
                .ifNotExists()
                .column("version", type: .bigint, .primaryKey(autoIncrement: false))
                .column("name", type: .text, .notNull)
                .column("applied_at", type: .bigint, .notNull)
                .run()
        }
        for migration in migrations {
            try await transaction { [isPostgres] sql in
                if isPostgres { try await sql.raw("SELECT pg_advisory_xact_lock(7244001)").run() }
                let applied = try await sql.select().column("version").from("schema_migrations")
                    .where("version", .equal, migration.version).first()
                guard applied == nil else { return }
                try await migration.apply(sql)
                try await sql.insert(into: "schema_migrations")
                    .columns("version", "name", "applied_at")
                    .values(SQLBind(migration.version), SQLBind(migration.name), SQLBind(Clock.nowMillis()))
                    .run()
            }
        }
    }

    /// The schema version this database is at.
    public func schemaVersion() async throws -> Int {
        try await read { sql in
            let rows = try await sql.raw("SELECT MAX(version) AS v FROM schema_migrations").all()
            return try rows.first.flatMap { try $0.decode(column: "v", as: Int?.self) } ?? 0
        }
    }
}
