import Foundation
import SQLKit

/// A web console session: the SHA-256 of its cookie value, the operator token it was opened with, and its CSRF token.
public struct ConsoleSessionRecord: Codable, Sendable, Equatable {
    public var idHash: String
    /// The hash of the operator token signed in with, so revoking the token ends its sessions.
    public var tokenHash: String
    public var actor: String
    /// Space-separated scopes, copied from the token at sign-in.
    public var scopes: String
    public var csrf: String
    public var sourceIP: String?
    public var createdAt: Int64
    public var lastSeenAt: Int64
    /// The absolute end, whatever the activity.
    public var expiresAt: Int64

    public init(
        idHash: String, tokenHash: String, actor: String, scopes: String, csrf: String, sourceIP: String?,
        createdAt: Int64, lastSeenAt: Int64, expiresAt: Int64
    ) {
        self.idHash = idHash
        self.tokenHash = tokenHash
        self.actor = actor
        self.scopes = scopes
        self.csrf = csrf
        self.sourceIP = sourceIP
        self.createdAt = createdAt
        self.lastSeenAt = lastSeenAt
        self.expiresAt = expiresAt
    }

    enum CodingKeys: String, CodingKey {
        case actor, scopes, csrf
        case idHash = "id_hash"
        case tokenHash = "token_hash"
        case sourceIP = "source_ip"
        case createdAt = "created_at"
        case lastSeenAt = "last_seen_at"
        case expiresAt = "expires_at"
    }
}

extension Store {
    /// Opens a session and records the sign-in, in one transaction; sessions idle since before `idleBefore` go.
    public func createSession(_ session: ConsoleSessionRecord, pruningIdleBefore idleBefore: Int64, audit: AuditRecord)
        async throws
    {
        try await transaction { [isPostgres] sql in
            try await sql.delete(from: "console_sessions").where("last_seen_at", .lessThan, idleBefore).run()
            try await sql.delete(from: "console_sessions").where("expires_at", .lessThan, session.createdAt).run()
            try await sql.insert(into: "console_sessions").model(session).run()
            try await Store.append(audit: audit, event: nil, in: sql, isPostgres: isPostgres)
        }
    }

    public func session(idHash: String) async throws -> ConsoleSessionRecord? {
        try await read { sql in
            try await sql.select().column("*").from("console_sessions").where("id_hash", .equal, idHash)
                .first(decoding: ConsoleSessionRecord.self, with: rowDecoder)
        }
    }

    /// Notes activity on a session (its idle clock restarts).
    public func touchSession(idHash: String, at now: Int64) async throws {
        try await write { sql in
            try await sql.update("console_sessions").set("last_seen_at", to: now).where("id_hash", .equal, idHash).run()
        }
    }

    /// Ends a session; `audit` (sign-out) is written only if there was one to end.
    public func deleteSession(idHash: String, audit: AuditRecord?) async throws {
        try await transaction { [isPostgres] sql in
            let gone = try await sql.delete(from: "console_sessions").where("id_hash", .equal, idHash)
                .returning("id_hash").all()
            if !gone.isEmpty, let audit {
                try await Store.append(audit: audit, event: nil, in: sql, isPostgres: isPostgres)
            }
        }
    }

    /// How many packages match `filter` (its status ignored), per status.
    public func packageCounts(_ filter: PackageFilter) async throws -> [PackageStatus: Int] {
        try await read { [isPostgres] sql in
            let query = Self.filtered(
                sql.select().column("status").column(SQLFunction("COUNT", args: SQLLiteral.all), as: "n")
                    .from("packages"), by: filter, isPostgres: isPostgres)
            var counts: [PackageStatus: Int] = [:]
            for row in try await query.groupBy("status").all() {
                if let status = PackageStatus(rawValue: try row.decode(column: "status", as: String.self)) {
                    counts[status] = try row.decode(column: "n", as: Int.self)
                }
            }
            return counts
        }
    }

    /// Agent and checker packages per poller name, per status.
    public func packageCountsByPoller() async throws -> [String: [PackageStatus: Int]] {
        try await read { sql in
            let rows = try await sql.select().column("poller_name").column("status")
                .column(SQLFunction("COUNT", args: SQLLiteral.all), as: "n").from("packages")
                .where("poller_name", .isNot, SQLLiteral.null).groupBy("poller_name").groupBy("status").all()
            var counts: [String: [PackageStatus: Int]] = [:]
            for row in rows {
                guard let status = PackageStatus(rawValue: try row.decode(column: "status", as: String.self)) else {
                    continue
                }
                counts[try row.decode(column: "poller_name", as: String.self), default: [:]][status] =
                    try row.decode(column: "n", as: Int.self)
            }
            return counts
        }
    }

    /// The latest unrevoked expiry of each kind (`svid`, `ca`) issued to `spiffeID`.
    public func identityExpiries(spiffeID: String) async throws -> [String: Int64] {
        try await read { sql in
            let rows = try await sql.select().column("kind")
                .column(SQLFunction("MAX", args: SQLColumn("not_after")), as: "not_after").from("issued_identities")
                .where("spiffe_id", .equal, spiffeID).where("revoked_at", .is, SQLLiteral.null).groupBy("kind").all()
            var expiries: [String: Int64] = [:]
            for row in rows {
                expiries[try row.decode(column: "kind", as: String.self)] = try row.decode(
                    column: "not_after", as: Int64.self)
            }
            return expiries
        }
    }
}
