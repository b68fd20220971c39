import Foundation
import Logging
import NIOCore
import NIOPosix
import PostgresKit
import SQLKit
import SQLiteKit

/// The connection and transaction layer Core's store and the poller's cache share: a pool of connections to
/// SQLite or PostgreSQL, reads, transactions, driver errors mapped to `StoreError`, and versioned migrations.
/// It knows no schema; each owner brings its own (`Store.migrations`, the poller cache's tables).
public final class Database: Sendable {
    public let location: DatabaseLocation
    public let logger: Logger
    private let pool: ConnectionPool
    /// Where transactions run: the same pool on PostgreSQL; on SQLite one dedicated connection, since
    /// SQLite has one writer at a time anyway and queueing here beats busy-waiting inside SQLite.
    private let writers: ConnectionPool
    /// PostgreSQL only: how the event listener opens its own connection.
    let postgresConfiguration: PostgresConnection.Configuration?

    public var isPostgres: Bool { location.isPostgres }

    /// Opens (without connecting yet) a store at `location`; `connections` bounds the pool. On SQLite,
    /// `pageCacheKiB` bounds each connection's page cache (nil: SQLite's default, 2 MiB); the file's pages stay
    /// in the kernel's cache either way, so a smaller one costs reads from memory, not from disk.
    public init(location: DatabaseLocation, connections: Int = 8, pageCacheKiB: Int? = nil, logger: Logger) {
        self.location = location
        self.logger = logger
        switch location {
        case .sqlite(let path):
            let open = { @Sendable in
                try await Database.openSQLite(path: path, pageCacheKiB: pageCacheKiB, logger: logger)
            }
            pool = ConnectionPool(maximum: min(connections, 4), open: open)
            writers = ConnectionPool(maximum: 1, open: open)
            postgresConfiguration = nil
        case .postgres(let host, let port, let user, let password, let database, let tls):
            var configuration = PostgresConnection.Configuration(
                host: host, port: port, username: user, password: password, database: database,
                tls: Database.postgresTLS(tls)
            )
            configuration.options.connectTimeout = .seconds(3)
            let settings = configuration
            pool = ConnectionPool(maximum: connections) {
                try await Database.openPostgres(configuration: settings, logger: logger)
            }
            writers = pool
            postgresConfiguration = settings
        }
    }

    /// Closes every idle connection; calls after this fail with `unavailable`.
    public func shutdown() async {
        await pool.shutdown()
        await writers.shutdown()
    }

    /// Runs `body` on one connection outside a transaction (reads).
    public func read<R: Sendable>(_ body: @Sendable (any SQLDatabase) async throws -> R) async throws -> R {
        try await withConnection(from: pool) { try await body($0) }
    }

    /// Runs `body` in one transaction: committed when it returns, rolled back when it throws.
    /// SQLite takes the write lock up front (`BEGIN IMMEDIATE`) so concurrent writers queue instead of deadlocking.
    public func transaction<R: Sendable>(_ body: @Sendable (any SQLDatabase) async throws -> R) async throws -> R {
        try await withConnection(from: writers) { sql in
            try await sql.raw(isPostgres ? "BEGIN" : "BEGIN IMMEDIATE").run()
            let result: R
            do {
                result = try await body(sql)
            } catch {
                try await sql.raw("ROLLBACK").run()
                throw error
            }
            try await sql.raw("COMMIT").run()
            return result
        }
    }

    /// Runs one statement batch on the writer connection without an explicit transaction: for a single
    /// statement that is atomic by itself (SQLite's autocommit), without the BEGIN/COMMIT round trips.
    public func write<R: Sendable>(_ body: @Sendable (any SQLDatabase) async throws -> R) async throws -> R {
        try await withConnection(from: writers) { try await body($0) }
    }

    /// Checks the database answers (for `/readyz`).
    public func ping() async throws {
        try await read { try await $0.raw("SELECT 1").run() }
    }

    private func withConnection<R: Sendable>(from pool: ConnectionPool, _ body: (any SQLDatabase) async throws -> R)
        async throws -> R
    {
        let connection: PooledConnection
        do {
            connection = try await pool.acquire()
        } catch let error as StoreError {
            throw error
        } catch {
            throw StoreError(.unavailable, "cannot connect to the database at \(location): \(Database.reason(error))")
        }
        do {
            let result = try await body(connection.sql)
            await pool.release(connection, broken: false)
            return result
        } catch {
            let mapped = Database.classify(error, location: location)
            await pool.release(connection, broken: mapped.code == .unavailable)
            throw mapped
        }
    }
}

/// SQLite calls block a thread each; a pool of its own (more threads than connections) keeps a waiting
/// reader from starving the writer that would release it.
let sqliteThreads: NIOThreadPool = {
    let pool = NIOThreadPool(numberOfThreads: 8)
    pool.start()
    return pool
}()

extension Database {
    static func openSQLite(path: String, pageCacheKiB: Int?, logger: Logger) async throws -> PooledConnection {
        let connection = try await SQLiteConnection.open(
            storage: .file(path: path), threadPool: sqliteThreads, logger: logger,
            on: MultiThreadedEventLoopGroup.singleton.any()
        )
        let sql = connection.sql(queryLogLevel: nil)
        do {
            for pragma in [
                "PRAGMA busy_timeout=10000", "PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL",
                "PRAGMA foreign_keys=ON",
            ] + (pageCacheKiB.map { ["PRAGMA cache_size=-\($0)"] } ?? []) {
                try await sql.raw(SQLQueryString(pragma)).run()
            }
        } catch {
            await closeUncancelled { try await connection.close() }
            throw error
        }
        return PooledConnection(
            sql: sql, close: { await closeUncancelled { try await connection.close() } },
            isClosed: { connection.isClosed })
    }

    /// Closes outside the caller's task: a cancelled caller (a call ended by shutdown) must still close its
    /// connection, and SQLiteNIO asserts that every connection is closed before it is freed.
    static func closeUncancelled(_ close: @escaping @Sendable () async throws -> Void) async {
        await Task { try? await close() }.value
    }

    static func openPostgres(configuration: PostgresConnection.Configuration, logger: Logger) async throws
        -> PooledConnection
    {
        let connection = try await PostgresConnection.connect(configuration: configuration, id: 1, logger: logger)
        let sql = connection.sql(queryLogLevel: nil)
        return PooledConnection(
            sql: sql, close: { await closeUncancelled { try await connection.close() } },
            isClosed: { connection.isClosed })
    }

    /// Maps driver errors to store codes: constraint violations are conflicts; anything that is not an answer
    /// from the database server (connection refused, reset, closed) means the database is unavailable.
    static func classify(_ error: any Error, location: DatabaseLocation) -> StoreError {
        if let error = error as? StoreError { return error }
        if let error = error as? PSQLError {
            if error.code == .server {
                let state = error.serverInfo?[.sqlState] ?? ""
                if state == "23505" { return StoreError(.conflict, "a record with these unique fields already exists") }
                if state.hasPrefix("08") || state.hasPrefix("57") {
                    return StoreError(.unavailable, "the database at \(location) went away (\(state))")
                }
                let message = error.serverInfo?[.message] ?? "server error"
                return StoreError(.invalid, "database refused the statement: \(message) (\(state))")
            }
            return StoreError(.unavailable, "the database at \(location) is unreachable: \(reason(error))")
        }
        if let error = error as? SQLiteError {
            if [.constraint, .constraintUniqueFailed, .constraintPrimaryKeyFailed].contains(error.reason) {
                return StoreError(.conflict, "a record with these unique fields already exists")
            }
            if [.busy, .busyTimeout, .locked].contains(error.reason) {
                return StoreError(.unavailable, "the SQLite database is locked by another writer")
            }
            return StoreError(.invalid, "sqlite: \(error.message)")
        }
        return StoreError(.unavailable, "database error: \(reason(error))")
    }

    static func reason(_ error: any Error) -> String {
        if let error = error as? PSQLError {
            // The server's own message, else what failed beneath (a TLS refusal names the certificate problem).
            if let message = error.serverInfo?[.message] { return "\(error.code): \(message)" }
            if let underlying = error.underlying { return "\(error.code): \(underlying)" }
            return "\(error.code)"
        }
        return String(describing: error)
    }
}
