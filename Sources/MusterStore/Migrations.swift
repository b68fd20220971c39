import Foundation
import SQLKit

extension Store {
    /// Every schema step, oldest first. Append; never edit a released step.
    static let migrations: [Migration] = [
        Migration(version: 1, name: "packages, pollers, identities, tokens, audit, events") { sql in
            try await sql.create(table: "packages")
                .column("id", type: .text, .primaryKey(autoIncrement: false))
                .column("name", type: .text, .notNull)
                .column("component_type", type: .text, .notNull)
                .column("site", type: .text, .notNull)
                .column("poller_name", type: .text)
                .column("spiffe_id", type: .text, .notNull)
                .column("active_spiffe_id", type: .text, .unique)
                .column("selectors", type: .text, .notNull)
                .column("token_hash", type: .text, .notNull, .unique)
                .column("token_ciphertext", type: .blob)
                .column("entry_id", type: .text)
                .column("ttl_seconds", type: .bigint, .notNull)
                .column("expires_at", type: .bigint, .notNull)
                .column("status", type: .text, .notNull)
                .column("created_by", type: .text, .notNull)
                .column("created_at", type: .bigint, .notNull)
                .column("delivered_at", type: .bigint)
                .column("delivered_via", type: .text)
                .column("downloaded_at", type: .bigint)
                .column("activated_at", type: .bigint)
                .column("activated_from_ip", type: .text)
                .column("activated_spiffe_id", type: .text)
                .column("expired_at", type: .bigint)
                .column("revoked_at", type: .bigint)
                .column("revoked_by", type: .text)
                .column("revoke_reason", type: .text)
                .column("notes", type: .text, .notNull)
                .column("metadata", type: .text, .notNull)
                .run()
            try await sql.create(index: "packages_by_created").on("packages").column("created_at").column("id").run()
            try await sql.create(index: "packages_by_status").on("packages").column("status").column("created_at")
                .column("id").run()
            try await sql.create(index: "packages_by_type").on("packages").column("component_type").column("created_at")
                .column("id").run()
            try await sql.create(index: "packages_by_poller").on("packages").column("poller_name").column("created_at")
                .column("id").run()
            try await sql.create(index: "packages_by_expiry").on("packages").column("status").column("expires_at").run()

            try await sql.create(table: "pollers")
                .column("name", type: .text, .primaryKey(autoIncrement: false))
                .column("spiffe_id", type: .text, .notNull)
                .column("site", type: .text, .notNull)
                .column("package_id", type: .text, .notNull)
                .column("status", type: .text, .notNull)
                .column("advertise_address", type: .text)
                .column("last_contact_at", type: .bigint)
                .column("last_contact_from", type: .text)
                .column("created_at", type: .bigint, .notNull)
                .run()

            try await sql.create(table: "issued_identities")
                .column("serial", type: .text, .primaryKey(autoIncrement: false))
                .column("spiffe_id", type: .text, .notNull)
                .column("package_id", type: .text)
                .column("kind", type: .text, .notNull)
                .column("issued_at", type: .bigint, .notNull)
                .column("not_after", type: .bigint, .notNull)
                .column("revoked_at", type: .bigint)
                .run()
            try await sql.create(index: "identities_by_spiffe_id").on("issued_identities").column("spiffe_id").run()

            try await sql.create(table: "operator_tokens")
                .column("id", type: .text, .primaryKey(autoIncrement: false))
                .column("name", type: .text, .notNull)
                .column("token_hash", type: .text, .notNull, .unique)
                .column("scopes", type: .text, .notNull)
                .column("created_by", type: .text, .notNull)
                .column("created_at", type: .bigint, .notNull)
                .column("revoked_at", type: .bigint)
                .run()

            try await sql.create(table: "audit_log")
                .column("id", type: .bigint, .primaryKey(autoIncrement: true))
                .column("at", type: .bigint, .notNull)
                .column("actor", type: .text, .notNull)
                .column("source_ip", type: .text)
                .column("action", type: .text, .notNull)
                .column("target_type", type: .text, .notNull)
                .column("target_id", type: .text)
                .column("outcome", type: .text, .notNull)
                .column("reason", type: .text)
                .column("details", type: .text, .notNull)
                .run()
            try await sql.create(index: "audit_by_actor").on("audit_log").column("actor").column("id").run()
            try await sql.create(index: "audit_by_action").on("audit_log").column("action").column("id").run()
            try await sql.create(index: "audit_by_target").on("audit_log").column("target_id").column("id").run()
            try await sql.create(index: "audit_by_time").on("audit_log").column("at").run()

            try await sql.create(table: "events")
                .column("id", type: .bigint, .primaryKey(autoIncrement: true))
                .column("at", type: .bigint, .notNull)
                .column("type", type: .text, .notNull)
                .column("subject", type: .text, .notNull)
                .column("payload", type: .text, .notNull)
                .run()
            try await sql.create(table: "event_cursors")
                .column("name", type: .text, .primaryKey(autoIncrement: false))
                .column("last_id", type: .bigint, .notNull)
                .run()
        }
    ]

    /// Brings the schema up to date. Safe with several Core replicas starting at once: on PostgreSQL each
    /// step runs under a transaction-scoped advisory lock; on SQLite `BEGIN IMMEDIATE` serializes them.
    /// Brings Core's schema up to date (one step at a time, each in its own transaction; replicas serialise).
    public func migrate() async throws { try await database.migrate(Store.migrations) }

    /// The schema version this database is at.
    public func schemaVersion() async throws -> Int { try await database.schemaVersion() }
}
