import Foundation
import Logging
import MusterConcurrency
import MusterDatabase
import SQLKit

/// The poller's durable local store (`DIR/cache.db`, SQLite, WAL, synchronous=FULL): the packages Core
/// streamed to it, the stream cursor, the SVIDs it issued, the activation outbox and the refused joins. A
/// redemption, its certificate record and its outbox row commit together, so a crash never redeems a token
/// twice and never loses an activation.
public final class PollerCache: Sendable {
    let database: Database
    /// Rows decode by the records' own CodingKeys (snake_case column names).
    static let decoder = SQLRowDecoder(keyDecodingStrategy: .useDefaultKeys)

    /// Redemptions committed in groups (see `GroupCommit`).
    let redemptions: GroupCommit<Redemption, CachedPackage?>

    public init(path: String, logger: Logger) {
        let database = Database(
            location: .sqlite(path: path), connections: 4, pageCacheKiB: PollerCache.pageCacheKiB, logger: logger)
        self.database = database
        redemptions = GroupCommit { batch in try await PollerCache.commit(batch, database: database) }
    }

    /// Each connection's SQLite page cache. A join reads a few pages by index; at SQLite's default (2 MiB a
    /// connection, five connections) a poller holding 10,000 packages kept about 2 MB of them in memory.
    static let pageCacheKiB = 512

    public func close() async { await database.shutdown() }

    /// Creates the tables on first use.
    public func open() async throws {
        try await database.transaction { sql in
            for statement in Self.schema { try await sql.raw(SQLQueryString(statement)).run() }
        }
    }

    static let schema = [
        """
        CREATE TABLE IF NOT EXISTS packages (id TEXT PRIMARY KEY, component_type TEXT NOT NULL, name TEXT NOT NULL,
            spiffe_id TEXT NOT NULL, token_hash TEXT UNIQUE, expires_at INTEGER NOT NULL, selectors TEXT NOT NULL,
            state TEXT NOT NULL, redeemed_at INTEGER, revoked_at INTEGER,
            redeemed_serial TEXT, redeemed_not_after INTEGER, redeemed_from TEXT)
        """,
        """
        CREATE TABLE IF NOT EXISTS issued (serial TEXT PRIMARY KEY, package_id TEXT NOT NULL, spiffe_id TEXT NOT NULL,
            issued_at INTEGER NOT NULL, not_after INTEGER NOT NULL, revoked_at INTEGER)
        """,
        "CREATE INDEX IF NOT EXISTS issued_by_package ON issued (package_id)",
        """
        CREATE TABLE IF NOT EXISTS outbox (package_id TEXT PRIMARY KEY, spiffe_id TEXT NOT NULL, source_address TEXT NOT NULL,
            activated_at INTEGER NOT NULL, serial TEXT NOT NULL)
        """,
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
        """
        CREATE TABLE IF NOT EXISTS refusals (id INTEGER PRIMARY KEY AUTOINCREMENT, package_id TEXT NOT NULL, reason TEXT NOT NULL,
            source_address TEXT NOT NULL, at INTEGER NOT NULL)
        """,
        // Self-enrollment requests: the handle's SHA-256 (never the handle), the CSR whose key an approval must
        // match, and whether Core has the request yet.
        """
        CREATE TABLE IF NOT EXISTS enrollments (id TEXT PRIMARY KEY, handle_hash TEXT NOT NULL, component_type TEXT NOT NULL,
            requested_name TEXT NOT NULL, claimed TEXT NOT NULL, csr BLOB NOT NULL, key_fingerprint TEXT NOT NULL,
            source_address TEXT NOT NULL, received_at INTEGER NOT NULL, state TEXT NOT NULL, reason TEXT,
            package_id TEXT, relayed INTEGER NOT NULL DEFAULT 0)
        """,
        "CREATE INDEX IF NOT EXISTS enrollments_unrelayed ON enrollments (relayed, received_at)",
        // A redemption is one UPDATE; this trigger records its SVID and queues its activation inside that same
        // statement, so the three commit together (or not at all) with no transaction round trips.
        """
        CREATE TRIGGER IF NOT EXISTS redemption_records AFTER UPDATE OF state ON packages
        WHEN OLD.state = 'pending' AND NEW.state = 'redeemed'
        BEGIN
            INSERT INTO issued (serial, package_id, spiffe_id, issued_at, not_after)
                VALUES (NEW.redeemed_serial, NEW.id, NEW.spiffe_id, NEW.redeemed_at, NEW.redeemed_not_after);
            INSERT INTO outbox (package_id, spiffe_id, source_address, activated_at, serial)
                VALUES (NEW.id, NEW.spiffe_id, NEW.redeemed_from, NEW.redeemed_at, NEW.redeemed_serial);
        END
        """,
    ]

    /// When Core refused this poller as revoked, if it has (kept across restarts: revocation is final).
    public func revokedByCore() async throws -> Int64? {
        try await database.read { sql in try await Self.meta("revoked_by_core", in: sql) }
    }

    public func markRevokedByCore(at now: Int64) async throws {
        try await database.write { sql in
            try await sql.raw(
                "INSERT INTO meta (key, value) VALUES ('revoked_by_core', \(bind: now)) ON CONFLICT (key) DO NOTHING"
            ).run()
        }
    }

    public func cursor() async throws -> Int64 {
        try await database.read { sql in try await Self.meta("cursor", in: sql) ?? 0 }
    }

    static func meta(_ key: String, in sql: any SQLDatabase) async throws -> Int64? {
        try await sql.raw("SELECT value FROM meta WHERE key = \(bind: key)").first(
            decodingColumn: "value", as: Int64.self)
    }

    /// Stores a pending package and the cursor it came with. A package already held keeps its local state
    /// (a resumed stream re-sends packages the poller has redeemed or seen revoked).
    public func receive(_ package: CachedPackage, cursor: Int64) async throws {
        try await database.transaction { sql in
            try await sql.raw(
                """
                INSERT INTO packages (id, component_type, name, spiffe_id, token_hash, expires_at, selectors, state)
                VALUES (\(bind: package.id), \(bind: package.componentType), \(bind: package.name), \(bind: package.spiffeID),
                        \(bind: package.tokenHash), \(bind: package.expiresAt), \(bind: package.selectors), 'pending')
                ON CONFLICT (id) DO NOTHING
                """
            ).run()
            try await Self.setCursor(cursor, in: sql)
        }
    }

    /// Applies a revocation: the package is dropped from redemption, its SVIDs are denied renewal.
    public func revoke(packageID: String, spiffeID: String, serials: [String], cursor: Int64, at now: Int64)
        async throws
    {
        try await database.transaction { sql in
            try await sql.raw(
                """
                INSERT INTO packages (id, component_type, name, spiffe_id, token_hash, expires_at, selectors, state, revoked_at)
                VALUES (\(bind: packageID), '', '', \(bind: spiffeID), NULL, 0, '[]', 'revoked', \(bind: now))
                ON CONFLICT (id) DO UPDATE SET state = 'revoked', revoked_at = \(bind: now), token_hash = NULL
                """
            ).run()
            try await sql.raw(
                "UPDATE issued SET revoked_at = \(bind: now) WHERE package_id = \(bind: packageID) AND revoked_at IS NULL"
            ).run()
            for serial in serials {
                try await sql.raw(
                    "UPDATE issued SET revoked_at = \(bind: now) WHERE serial = \(bind: serial) AND revoked_at IS NULL"
                ).run()
            }
            try await Self.setCursor(cursor, in: sql)
        }
    }

    static func setCursor(_ cursor: Int64, in sql: any SQLDatabase) async throws {
        try await sql.raw(
            """
            INSERT INTO meta (key, value) VALUES ('cursor', \(bind: cursor))
            ON CONFLICT (key) DO UPDATE SET value = MAX(value, excluded.value)
            """
        ).run()
    }

    /// Counts for `muster-poller status`: packages by state, SVIDs issued, activations queued, the cursor.
    public func summary() async throws -> [String: Int64] {
        try await database.read { sql in
            var counts: [String: Int64] = [:]
            for row in try await sql.raw("SELECT state, COUNT(*) AS n FROM packages GROUP BY state").all() {
                counts["packages_" + (try row.decode(column: "state", as: String.self))] = try row.decode(
                    column: "n", as: Int64.self)
            }
            counts["issued"] =
                try await sql.raw("SELECT COUNT(*) AS n FROM issued").first(decodingColumn: "n", as: Int64.self) ?? 0
            counts["outbox"] =
                try await sql.raw("SELECT COUNT(*) AS n FROM outbox").first(decodingColumn: "n", as: Int64.self) ?? 0
            counts["revoked_by_core"] = try await Self.meta("revoked_by_core", in: sql)
            counts["refusals"] =
                try await sql.raw("SELECT COUNT(*) AS n FROM refusals").first(decodingColumn: "n", as: Int64.self) ?? 0
            counts["cursor"] = try await Self.meta("cursor", in: sql) ?? 0
            counts["enrollments_unrelayed"] =
                try await sql.raw("SELECT COUNT(*) AS n FROM enrollments WHERE relayed = 0").first(
                    decodingColumn: "n", as: Int64.self) ?? 0
            for row in try await sql.raw("SELECT state, COUNT(*) AS n FROM enrollments GROUP BY state").all() {
                counts["enrollments_" + (try row.decode(column: "state", as: String.self))] = try row.decode(
                    column: "n", as: Int64.self)
            }
            return counts
        }
    }
}
