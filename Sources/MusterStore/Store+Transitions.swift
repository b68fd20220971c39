import Foundation
import SQLKit

/// The package lifecycle's named transitions (DESIGN.md). Each is one conditional update with its audit row
/// and its event in one transaction; a package not in a state the transition starts from is a `conflict`, a
/// missing one `notFound`. The SQL stays here: callers name the move, never the columns.
extension Store {
    /// The outbox event a transition writes, made from the package as it is after the move.
    public typealias PackageEvent = @Sendable (PackageRecord) -> EventRecord

    /// Created, Delivered or Activated → Revoked: the token and the live identity are erased, and the revocation
    /// cascades (its certificates; for a poller, its agents and checkers).
    public func revokePackage(
        id: String, at now: Int64, by actor: String, reason: String?, audit: AuditRecord,
        event: @escaping PackageEvent
    ) async throws -> PackageRecord {
        try await transitionPackage(
            id: id, from: [.created, .delivered, .activated], set: Self.revocation(at: now, by: actor, reason: reason),
            audit: audit, event: event
        )
    }

    static func revocation(at now: Int64, by actor: String, reason: String?) -> [String: any SQLExpression] {
        [
            "status": SQLBind(PackageStatus.revoked.rawValue), "revoked_at": SQLBind(now),
            "revoked_by": SQLBind(actor),
            "revoke_reason": reason.map { SQLBind($0) as any SQLExpression } ?? SQLLiteral.null,
            "active_spiffe_id": SQLLiteral.null, "token_ciphertext": SQLLiteral.null, "entry_id": SQLLiteral.null,
        ]
    }

    /// Created or Delivered past its TTL → Expired (a package redeemed or revoked meanwhile is a conflict).
    public func expirePackage(id: String, at now: Int64, audit: AuditRecord, event: @escaping PackageEvent) async throws
        -> PackageRecord
    {
        try await transitionPackage(
            id: id, from: [.created, .delivered],
            set: [
                "status": SQLBind(PackageStatus.expired.rawValue), "expired_at": SQLBind(now),
                "active_spiffe_id": SQLLiteral.null, "token_ciphertext": SQLLiteral.null, "entry_id": SQLLiteral.null,
            ],
            conditions: [SQLBinaryExpression(SQLIdentifier("expires_at"), .lessThanOrEqual, SQLBind(now))],
            audit: audit, event: event
        )
    }

    /// The operator's one download: Created or Delivered (via its poller) → Delivered, the sealed token erased.
    /// Only the first download wins; a second is a conflict.
    public func markDownloaded(id: String, at now: Int64, audit: AuditRecord, event: @escaping PackageEvent)
        async throws -> PackageRecord
    {
        try await transitionPackage(
            id: id, from: [.created, .delivered],
            set: [
                "status": SQLBind(PackageStatus.delivered.rawValue), "token_ciphertext": SQLLiteral.null,
                "downloaded_at": SQLBind(now),
                "delivered_at": SQLFunction("COALESCE", args: SQLIdentifier("delivered_at"), SQLBind(now)),
                "delivered_via": SQLFunction("COALESCE", args: SQLIdentifier("delivered_via"), SQLBind("download")),
            ],
            conditions: [SQLBinaryExpression(SQLIdentifier("downloaded_at"), .is, SQLLiteral.null)],
            audit: audit, event: event
        )
    }

    /// Created → Delivered for packages their pollers' streams pulled, in one transaction, each with its own audit
    /// row and event. A package no longer Created (downloaded, revoked or expired meanwhile, or pulled through
    /// another replica) is left out of the answer and changes nothing; one pulled twice in the group moves once.
    /// However many there are, the group is one call on PostgreSQL (`muster_pull_packages`, which takes the
    /// event-order lock only for its events' insert, then commits), and on SQLite one conditional update of them all,
    /// one insert of their audit rows and their events (`append(events:)`), in that order.
    /// `pulls` were made at `now`, the time the update records.
    public func markPulledTogether(_ pulls: [PulledPackage], at now: Int64) async throws -> [PackageRecord] {
        var seen: Set<String> = []
        let pulls = pulls.filter { seen.insert($0.id).inserted }
        guard !pulls.isEmpty else { return [] }
        let moved: Set<String>
        if isPostgres {
            let audits = try String(decoding: JSONEncoder().encode(pulls.map(\.audit)), as: UTF8.self)
            let events = try String(decoding: JSONEncoder().encode(pulls.map(\.event)), as: UTF8.self)
            moved = try await write { sql in
                let rows = try await sql.raw(
                    """
                    SELECT muster_pull_packages(\(bind: pulls.map(\.id)), \(bind: now), \
                    \(bind: audits)::json, \(bind: events)::json) AS id
                    """
                ).all()
                return Set(try rows.map { try $0.decode(column: "id", as: String.self) })
            }
        } else {
            moved = try await transaction { sql in
                let ids = Set(
                    try await sql.update("packages")
                        .set("status", to: PackageStatus.delivered.rawValue)
                        .set("delivered_at", to: now)
                        .set("delivered_via", to: PulledPackage.via)
                        .where("id", .in, pulls.map(\.id)).where("status", .equal, PackageStatus.created.rawValue)
                        .returning("id").all(decodingColumn: "id", as: String.self))
                let moved = pulls.filter { ids.contains($0.id) }
                guard !moved.isEmpty else { return [] }
                try await sql.insert(into: "audit_log").models(moved.map(\.audit)).run()
                try await Store.append(events: moved.map(\.event), in: sql, isPostgres: false)
                return ids
            }
        }
        return pulls.filter { moved.contains($0.id) }.map(\.delivered)
    }

    /// An agent or checker activation its poller reports: Created or Delivered → Activated (the sealed token
    /// erased), or, with `correctingExpiry`, Expired → Activated for a token redeemed in time and reported after
    /// the reaper expired it (the live identity restored).
    public func activateReported(
        id: String, spiffeID: String, activatedAt: Int64, from source: String, correctingExpiry: Bool,
        audit: AuditRecord, event: @escaping PackageEvent
    ) async throws -> PackageRecord {
        try await transitionPackage(
            id: id, from: correctingExpiry ? [.expired] : [.created, .delivered],
            set: Self.reportedActivation(
                spiffeID: spiffeID, activatedAt: activatedAt, from: source, correctingExpiry: correctingExpiry),
            audit: audit, event: event
        )
    }

    /// The columns a reported activation sets. `activateReportedTogether` sets the same ones (not correcting an
    /// expiry) for many packages in one statement: a column added here is added there too.
    static func reportedActivation(spiffeID: String, activatedAt: Int64, from source: String, correctingExpiry: Bool)
        -> [String: any SQLExpression]
    {
        var set: [String: any SQLExpression] = [
            "status": SQLBind(PackageStatus.activated.rawValue), "activated_at": SQLBind(activatedAt),
            "activated_from_ip": SQLBind(source), "activated_spiffe_id": SQLBind(spiffeID),
        ]
        if correctingExpiry {
            set["expired_at"] = SQLLiteral.null
            set["active_spiffe_id"] = SQLBind(spiffeID)
        } else {
            set["token_ciphertext"] = SQLLiteral.null
        }
        return set
    }
}

/// One package a poller's stream pulled, as `markPulledTogether` records it: its audit row, and the package and
/// event as they read once it moved, made before the move from the Created record the stream holds. That is exact:
/// every other write to a Created package moves it out of Created, and then the pull does not move it.
public struct PulledPackage: Sendable {
    /// What a pull sets `delivered_via` to.
    static let via = "poller"

    public let id: String
    public let delivered: PackageRecord
    public let audit: AuditRecord
    public let event: EventRecord

    /// `created` pulled at `now`; `event` makes the Delivered event from the package as it reads once moved.
    public init(
        created: PackageRecord, at now: Int64, audit: AuditRecord, event: (PackageRecord) -> EventRecord
    ) {
        var delivered = created
        delivered.status = .delivered
        delivered.deliveredAt = now
        delivered.deliveredVia = Self.via
        self.id = created.id
        self.delivered = delivered
        self.audit = audit
        self.event = event(delivered)
    }
}

/// One activation a poller reported, as `activateReportedTogether` records it.
public struct ReportedMove: Sendable {
    public let id: String
    public let spiffeID: String
    public let activatedAt: Int64
    public let source: String
    public let audit: AuditRecord

    public init(id: String, spiffeID: String, activatedAt: Int64, source: String, audit: AuditRecord) {
        self.id = id
        self.spiffeID = spiffeID
        self.activatedAt = activatedAt
        self.source = source
        self.audit = audit
    }
}

extension Store {
    /// Created or Delivered → Activated for several reported packages in one transaction, each with its own audit
    /// row and event, so a report of many joins is one commit of a few statements whatever its size: one update of
    /// them all (`UPDATE … FROM (VALUES …)`, each row its own time, address and ID), one insert of the moved ones'
    /// audit rows, and their events last (on PostgreSQL the first takes the event-order lock, which every replica's
    /// event-writing transactions wait for until this COMMIT, so the rest is done before it is taken). A package no
    /// longer Created or Delivered (revoked, reported twice, moved by another replica) is left out of the answer and
    /// changes nothing; the caller looks at those one by one. A package twice in `moves` moves once, by its first.
    /// The answer is in the order of `moves`.
    public func activateReportedTogether(_ moves: [ReportedMove], event: @escaping PackageEvent) async throws
        -> [PackageRecord]
    {
        var seen: Set<String> = []
        let moves = moves.filter { seen.insert($0.id).inserted }
        guard !moves.isEmpty else { return [] }
        return try await transaction { [isPostgres] sql in
            let rows = moves.map { move -> SQLQueryString in
                "(\(binds: [move.id, move.activatedAt, move.source, move.spiffeID] as [any Encodable & Sendable]))"
            }
            // PostgreSQL's RETURNING * would add the VALUES' columns; SQLite returns the updated table's alone.
            let updated = try await sql.raw(
                """
                WITH moves (id, activated_at, source, spiffe_id) AS (VALUES \(rows.joined(separator: ", ")))
                UPDATE packages SET status = \(bind: PackageStatus.activated.rawValue),
                    activated_at = moves.activated_at, activated_from_ip = moves.source,
                    activated_spiffe_id = moves.spiffe_id, token_ciphertext = NULL
                FROM moves
                WHERE packages.id = moves.id
                    AND packages.status IN (\(bind: PackageStatus.created.rawValue), \(bind: PackageStatus.delivered.rawValue))
                RETURNING \(unsafeRaw: isPostgres ? "packages.*" : "*")
                """
            ).all(decoding: PackageRecord.self, with: rowDecoder)
            let byID = Dictionary(updated.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
            let moved = moves.filter { byID[$0.id] != nil }
            guard !moved.isEmpty else { return [] }
            try await sql.insert(into: "audit_log").models(moved.map(\.audit)).run()
            let records = moved.compactMap { byID[$0.id] }
            try await Store.append(events: records.map(event), in: sql, isPostgres: isPostgres)
            return records
        }
    }

    /// The packages among `ids` that exist, by id: one read.
    public func packages(ids: [String]) async throws -> [String: PackageRecord] {
        guard !ids.isEmpty else { return [:] }
        return try await read { sql in
            let rows = try await sql.select().column("*").from("packages").where("id", .in, Array(Set(ids)))
                .all(decoding: PackageRecord.self, with: rowDecoder)
            return Dictionary(rows.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        }
    }
}

extension Store {
    /// The registration entry IDs a package's end would clear: its own and, `cascading` for a poller package,
    /// those of the live agent and checker packages it serves (a revocation takes them along).
    public func liveEntryIDs(of id: String, cascading: Bool) async throws -> [String] {
        try await read { sql in
            guard
                let package = try await sql.select().column("*").from("packages").where("id", .equal, id)
                    .first(decoding: PackageRecord.self, with: rowDecoder)
            else { return [] }
            var ids = package.entryID.map { [$0] } ?? []
            if cascading, package.componentType == .poller, package.status.isTerminal == false {
                ids += try await sql.select().column("entry_id").from("packages")
                    .where("poller_name", .equal, package.name)
                    .where(
                        "status", .in,
                        [
                            PackageStatus.created.rawValue, PackageStatus.delivered.rawValue,
                            PackageStatus.activated.rawValue,
                        ]
                    )
                    .where(SQLIdentifier("entry_id"), .isNot, SQLLiteral.null)
                    .all(decodingColumn: "entry_id", as: String.self)
            }
            return ids
        }
    }
}
