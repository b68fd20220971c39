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
        },
        Migration(version: 2, name: "web console sessions") { sql in
            try await sql.create(table: "console_sessions")
                .column("id_hash", type: .text, .primaryKey(autoIncrement: false))
                .column("token_hash", type: .text, .notNull)
                .column("actor", type: .text, .notNull)
                .column("scopes", type: .text, .notNull)
                .column("csrf", type: .text, .notNull)
                .column("source_ip", type: .text)
                .column("created_at", type: .bigint, .notNull)
                .column("last_seen_at", type: .bigint, .notNull)
                .column("expires_at", type: .bigint, .notNull)
                .run()
            try await sql.create(index: "console_sessions_by_seen").on("console_sessions").column("last_seen_at").run()
        },
        Migration(version: 3, name: "self-enrollment requests") { sql in
            try await sql.create(table: "enrollments")
                .column("id", type: .text, .primaryKey(autoIncrement: false))
                .column("status", type: .text, .notNull)
                .column("component_type", type: .text, .notNull)
                .column("poller_name", type: .text, .notNull)
                .column("requested_name", type: .text, .notNull)
                .column("machine_id", type: .text, .notNull)
                .column("claimed", type: .text, .notNull)
                .column("key_fingerprint", type: .text, .notNull)
                .column("source_address", type: .text, .notNull)
                .column("received_at", type: .bigint, .notNull)
                .column("requested_at", type: .bigint, .notNull)
                .column("expires_at", type: .bigint, .notNull)
                .column("decided_at", type: .bigint)
                .column("decided_by", type: .text)
                .column("decision_reason", type: .text)
                .column("name", type: .text)
                .column("spiffe_id", type: .text)
                .column("package_id", type: .text)
                .column("activated_at", type: .bigint)
                .run()
            try await sql.create(index: "enrollments_by_requested").on("enrollments").column("requested_at")
                .column("id").run()
            try await sql.create(index: "enrollments_by_status").on("enrollments").column("status")
                .column("requested_at").column("id").run()
            try await sql.create(index: "enrollments_by_machine").on("enrollments").column("machine_id").run()
            try await sql.create(index: "enrollments_by_key").on("enrollments").column("key_fingerprint").run()
            try await sql.create(index: "enrollments_by_package").on("enrollments").column("package_id").run()
        },
        Migration(version: 4, name: "packages by name; PostgreSQL: events appended in one call") { sql in
            // Creating an agent's package looks its poller's package up by name (`livePoller(named:)`), which
            // without this index read every poller package, a cost that grew with the fleet.
            try await sql.create(index: "packages_by_name").on("packages").column("name").run()
            guard sql.dialect.name == "postgresql" else { return }
            // What `Store.append` did in three round trips, in one: the event-order lock (transaction-scoped, held
            // to COMMIT, so event ids commit in order and a reader past id N never later finds a smaller one), the
            // row, and the notification on `Store.eventChannel`. Every round trip under that lock is one more that
            // every other event-writing transaction, on every replica, waits behind.
            try await sql.raw(
                """
                CREATE OR REPLACE FUNCTION muster_append_event(p_at bigint, p_type text, p_subject text, p_payload text)
                RETURNS void LANGUAGE plpgsql AS $$
                BEGIN
                    PERFORM pg_advisory_xact_lock(7244002);
                    INSERT INTO events (at, type, subject, payload) VALUES (p_at, p_type, p_subject, p_payload);
                    PERFORM pg_notify('muster_events', '');
                END
                $$
                """
            ).run()
        },
        Migration(version: 5, name: "PostgreSQL: notifications name the event's type; a group of pulls in one call") {
            sql in
            guard sql.dialect.name == "postgresql" else { return }
            // The notification now carries the event's type, so a replica's reader that waits for some types only
            // (the package feed) sleeps through the others (`EventHub`). An empty payload still wakes everyone.
            try await sql.raw(
                """
                CREATE OR REPLACE FUNCTION muster_append_event(p_at bigint, p_type text, p_subject text, p_payload text)
                RETURNS void LANGUAGE plpgsql AS $$
                BEGIN
                    PERFORM pg_advisory_xact_lock(7244002);
                    INSERT INTO events (at, type, subject, payload) VALUES (p_at, p_type, p_subject, p_payload);
                    PERFORM pg_notify('muster_events', p_type);
                END
                $$
                """
            ).run()
            // A group of pulls (`Store.markPulledTogether`) in one round trip, one transaction by itself: Created →
            // Delivered for those still Created, their audit rows, then under the event-order lock their events
            // (rows of `p_audits` and `p_events` whose target or subject did not move are left out), and one
            // notification per event type. The lock is held from the events' insert to the commit, inside the call.
            try await sql.raw(
                """
                CREATE OR REPLACE FUNCTION muster_pull_packages(p_ids text[], p_at bigint, p_audits json, p_events json)
                RETURNS SETOF text LANGUAGE plpgsql AS $$
                DECLARE
                    v_moved text[];
                BEGIN
                    WITH moved AS (
                        UPDATE packages SET status = 'delivered', delivered_at = p_at, delivered_via = 'poller'
                        WHERE id = ANY (p_ids) AND status = 'created' RETURNING id
                    ) SELECT coalesce(array_agg(id), '{}') INTO v_moved FROM moved;
                    IF cardinality(v_moved) = 0 THEN RETURN; END IF;
                    INSERT INTO audit_log (at, actor, source_ip, action, target_type, target_id, outcome, reason, details)
                        SELECT a.at, a.actor, a.source_ip, a.action, a.target_type, a.target_id, a.outcome, a.reason,
                            a.details
                        FROM ROWS FROM (json_populate_recordset(NULL::audit_log, p_audits)) WITH ORDINALITY AS a
                        WHERE a.target_id = ANY (v_moved) ORDER BY a.ordinality;
                    PERFORM pg_advisory_xact_lock(7244002);
                    INSERT INTO events (at, type, subject, payload)
                        SELECT e.at, e.type, e.subject, e.payload
                        FROM ROWS FROM (json_populate_recordset(NULL::events, p_events)) WITH ORDINALITY AS e
                        WHERE e.subject = ANY (v_moved) ORDER BY e.ordinality;
                    PERFORM pg_notify('muster_events', t.type)
                        FROM (SELECT DISTINCT e.type FROM json_populate_recordset(NULL::events, p_events) AS e
                              WHERE e.subject = ANY (v_moved)) AS t;
                    RETURN QUERY SELECT unnest(v_moved);
                END
                $$
                """
            ).run()
        },
    ]

    /// Brings the schema up to date. Safe with several Core replicas starting at once: on PostgreSQL each
    /// step runs under a transaction-scoped advisory lock; on SQLite `BEGIN IMMEDIATE` serializes them.
    /// Brings Core's schema up to date (one step at a time, each in its own transaction; replicas serialise).
    public func migrate() async throws { try await database.migrate(Store.migrations) }

    /// The schema version this database is at.
    public func schemaVersion() async throws -> Int { try await database.schemaVersion() }
}
