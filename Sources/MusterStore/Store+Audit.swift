import Foundation
import SQLKit

/// Which audit rows a reviewer asks for; newest first, paged by id.
public struct AuditFilter: Sendable, Equatable {
    public var actor: String?
    public var action: String?
    public var targetID: String?
    public var outcome: String?
    public var since: Int64?
    public var until: Int64?
    public var limit: Int
    public var beforeID: Int64?

    public init(
        actor: String? = nil, action: String? = nil, targetID: String? = nil, outcome: String? = nil,
        since: Int64? = nil, until: Int64? = nil, limit: Int = 100, beforeID: Int64? = nil
    ) {
        self.actor = actor
        self.action = action
        self.targetID = targetID
        self.outcome = outcome
        self.since = since
        self.until = until
        self.limit = limit
        self.beforeID = beforeID
    }
}

extension Store {
    /// Records an audit row on its own (refusals, reads of secrets): its own transaction.
    public func audit(_ record: AuditRecord) async throws {
        try await transaction { sql in try await sql.insert(into: "audit_log").model(record).run() }
    }

    public func auditLog(_ filter: AuditFilter) async throws -> Page<AuditRecord> {
        let limit = max(1, min(filter.limit, 1000))
        let rows = try await read { sql in
            var query = sql.select().column("*").from("audit_log")
            if let actor = filter.actor { query = query.where("actor", .equal, actor) }
            if let action = filter.action { query = query.where("action", .equal, action) }
            if let target = filter.targetID { query = query.where("target_id", .equal, target) }
            if let outcome = filter.outcome { query = query.where("outcome", .equal, outcome) }
            if let since = filter.since { query = query.where("at", .greaterThanOrEqual, since) }
            if let until = filter.until { query = query.where("at", .lessThan, until) }
            if let before = filter.beforeID { query = query.where("id", .lessThan, before) }
            return try await query.orderBy("id", .descending).limit(limit + 1)
                .all(decoding: AuditRecord.self, with: rowDecoder)
        }
        let items = Array(rows.prefix(limit))
        let next = rows.count > limit ? items.last?.id.map(String.init) : nil
        return Page(items: items, nextCursor: next)
    }

    /// Events after `id`, oldest first: the outbox read by SSE streams and the NATS publisher (the package feed reads
    /// some types only, with their packages: `eventsWithPackages`).
    public func events(after id: Int64, limit: Int) async throws -> [EventRecord] {
        try await read { sql in
            try await sql.select().column("*").from("events").where("id", .greaterThan, id)
                .orderBy("id").limit(limit).all(decoding: EventRecord.self, with: rowDecoder)
        }
    }

    /// Events after `id`, oldest first, each with the package it is about when its type is one of `packageTypes`, in one
    /// read (the package as it stands now, joined by the event's subject); with `types`, only events of those types.
    /// The package feed reads this way: one statement per batch, not one more per event.
    public func eventsWithPackages(after id: Int64, limit: Int, types: Set<String>? = nil, packageTypes: Set<String>)
        async throws -> [EventWithPackage]
    {
        if types?.isEmpty == true { return [] }
        // `IN ()` is not SQL PostgreSQL takes: with no package type, no event is joined.
        let joined: SQLQueryString =
            packageTypes.isEmpty ? "FALSE" : "e.type IN (\(binds: packageTypes.sorted())) AND p.id = e.subject"
        let typed: SQLQueryString = types.map { "AND e.type IN (\(binds: $0.sorted()))" } ?? ""
        return try await read { sql in
            let rows = try await sql.raw(
                """
                SELECT e.id AS event_id, e.at AS event_at, e.type AS event_type, e.subject AS event_subject, \
                e.payload AS event_payload, p.* FROM events e LEFT JOIN packages p ON \(joined) \
                WHERE e.id > \(bind: id) \(typed) ORDER BY e.id LIMIT \(bind: limit)
                """
            ).all()
            return try rows.map { row in
                let event = EventRecord(
                    id: try row.decode(column: "event_id", as: Int64.self),
                    at: try row.decode(column: "event_at", as: Int64.self),
                    type: try row.decode(column: "event_type", as: String.self),
                    subject: try row.decode(column: "event_subject", as: String.self),
                    payload: try row.decode(column: "event_payload", as: String.self))
                let package =
                    try row.decodeNil(column: "id") ? nil : try row.decode(model: PackageRecord.self, with: rowDecoder)
                return EventWithPackage(event: event, package: package)
            }
        }
    }

    /// The newest event id (0 when there is none).
    public func lastEventID() async throws -> Int64 {
        try await read { sql in
            let row = try await sql.raw("SELECT MAX(id) AS last FROM events").first()
            return try row?.decode(column: "last", as: Int64?.self) ?? 0
        }
    }

    /// Where a named outbox consumer (e.g. the NATS publisher) has got to.
    public func eventCursor(_ name: String) async throws -> Int64 {
        try await read { sql in
            try await sql.select().column("last_id").from("event_cursors").where("name", .equal, name)
                .first(decodingColumn: "last_id", as: Int64.self) ?? 0
        }
    }

    /// Moves a consumer's cursor from `old` to `new`; false if another replica moved it first.
    public func advanceEventCursor(_ name: String, from old: Int64, to new: Int64) async throws -> Bool {
        try await transaction { sql in
            if old == 0 {
                try await sql.insert(into: "event_cursors").columns("name", "last_id").values(
                    SQLBind(name), SQLBind(Int64(0))
                )
                .ignoringConflicts(with: ["name"]).run()
            }
            let moved = try await sql.update("event_cursors").set("last_id", to: new)
                .where("name", .equal, name).where("last_id", .equal, old)
                .returning("last_id").all()
            return !moved.isEmpty
        }
    }
}

extension Store {
    public func insertOperatorToken(_ token: OperatorTokenRecord, audit: AuditRecord) async throws {
        try await transaction { [isPostgres] sql in
            try await sql.insert(into: "operator_tokens").model(token).run()
            try await Store.append(audit: audit, event: nil, in: sql, isPostgres: isPostgres)
        }
    }

    /// Revokes every live token named `name` and ends their console sessions, in one transaction; how many.
    public func revokeOperatorTokens(named name: String, at now: Int64, audit: AuditRecord) async throws -> Int {
        try await transaction { [isPostgres] sql in
            let revoked = try await sql.update("operator_tokens").set("revoked_at", to: now)
                .where("name", .equal, name).where("revoked_at", .is, SQLLiteral.null)
                .returning("token_hash").all(decodingColumn: "token_hash", as: String.self)
            guard !revoked.isEmpty else { return 0 }
            try await sql.delete(from: "console_sessions").where("token_hash", .in, revoked).run()
            try await Store.append(audit: audit, event: nil, in: sql, isPostgres: isPostgres)
            return revoked.count
        }
    }

    public func operatorToken(hash: String) async throws -> OperatorTokenRecord? {
        try await read { sql in
            try await sql.select().column("*").from("operator_tokens").where("token_hash", .equal, hash)
                .first(decoding: OperatorTokenRecord.self, with: rowDecoder)
        }
    }

    public func pollers() async throws -> [PollerRecord] {
        try await read { sql in
            try await sql.select().column("*").from("pollers").orderBy("name")
                .all(decoding: PollerRecord.self, with: rowDecoder)
        }
    }

    public func poller(named name: String) async throws -> PollerRecord? {
        try await read { sql in
            try await sql.select().column("*").from("pollers").where("name", .equal, name)
                .first(decoding: PollerRecord.self, with: rowDecoder)
        }
    }

    /// Notes several pollers' last contacts in one transaction, one statement per `perStatement` (a fleet's
    /// contacts of one second are one statement, not one each). A contact older than the one stored (the
    /// attestation's, or another replica's) leaves the row as it is.
    public func touchPollers(_ contacts: [PollerContact], perStatement: Int = 500) async throws {
        guard !contacts.isEmpty else { return }
        let step = max(1, perStatement)
        try await transaction { sql in
            for start in stride(from: 0, to: contacts.count, by: step) {
                // An empty address stands for none: a NULL in VALUES would have no type on PostgreSQL.
                let rows = contacts[start..<min(start + step, contacts.count)].map { contact -> SQLQueryString in
                    "(\(bind: contact.name), \(bind: contact.at), \(bind: contact.from ?? ""))"
                }
                try await sql.raw(
                    """
                    WITH contacts (poller, seen_at, address) AS (VALUES \(rows.joined(separator: ", ")))
                    UPDATE pollers SET last_contact_at = contacts.seen_at, last_contact_from = NULLIF(contacts.address, '')
                    FROM contacts
                    WHERE pollers.name = contacts.poller
                        AND (pollers.last_contact_at IS NULL OR pollers.last_contact_at <= contacts.seen_at)
                    """
                ).run()
            }
        }
    }
}
