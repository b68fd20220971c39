import Foundation
import MusterIdentity
import SQLKit

/// Which packages a list asks for, and where the page starts.
public struct PackageFilter: Sendable, Equatable {
    public var status: PackageStatus?
    public var componentType: ComponentType?
    public var pollerName: String?
    public var site: String?
    /// Part of the name (names are lowercase, so this matches case-insensitively once lowered).
    public var nameContains: String?
    public var limit: Int
    public var cursor: PageCursor?

    public init(
        status: PackageStatus? = nil, componentType: ComponentType? = nil, pollerName: String? = nil,
        site: String? = nil, nameContains: String? = nil, limit: Int = 100, cursor: PageCursor? = nil
    ) {
        self.nameContains = nameContains
        self.status = status
        self.componentType = componentType
        self.pollerName = pollerName
        self.site = site
        self.limit = limit
        self.cursor = cursor
    }
}

/// A keyset position in a list ordered newest first: (created_at, id).
public struct PageCursor: Sendable, Equatable {
    public let createdAt: Int64
    public let id: String

    public init(createdAt: Int64, id: String) {
        self.createdAt = createdAt
        self.id = id
    }

    /// Opaque text for `next_cursor`.
    public var token: String { ByteEncoding.base64URL(Data("\(createdAt):\(id)".utf8)) }

    public init(token: String) throws {
        guard let data = ByteEncoding.bytes(base64URL: token), let text = String(data: data, encoding: .utf8),
            let colon = text.firstIndex(of: ":"), let millis = Int64(text[..<colon])
        else { throw StoreError(.invalid, "cursor is not one this server issued") }
        self.init(createdAt: millis, id: String(text[text.index(after: colon)...]))
    }
}

/// A page of results and the cursor of the next page, if any.
public struct Page<Item: Sendable>: Sendable {
    public let items: [Item]
    public let nextCursor: String?
}

let rowDecoder = SQLRowDecoder()

/// A certificate issued on redemption, recorded by serial so it can be listed and revoked.
public struct IssuedCertificate: Sendable, Equatable {
    public let serial: String
    /// `svid` or `ca`.
    public let kind: String
    public let notAfter: Int64

    public init(serial: String, kind: String, notAfter: Int64) {
        self.serial = serial
        self.kind = kind
        self.notAfter = notAfter
    }
}

extension Store {
    /// Stores a new package (and, for a poller, its pending poller row) with its audit row and event.
    public func createPackage(_ package: PackageRecord, audit: AuditRecord, event: EventRecord) async throws {
        try await transaction { [isPostgres] sql in
            try await Self.insert(package, audit: audit, event: event, in: sql, isPostgres: isPostgres)
        }
    }

    /// Several packages, each with its audit row and event, in one transaction: all are stored or none is (a
    /// SPIFFE ID a live package holds is a conflict for the whole batch).
    public func createPackages(_ packages: [NewPackage]) async throws {
        try await transaction { [isPostgres] sql in
            for item in packages {
                try await Self.insert(
                    item.record, audit: item.audit, event: item.event, in: sql, isPostgres: isPostgres)
            }
        }
    }

    /// Which of `spiffeIDs` a live package holds now.
    public func liveSpiffeIDs(among spiffeIDs: [String]) async throws -> Set<String> {
        guard !spiffeIDs.isEmpty else { return [] }
        return try await read { sql in
            let rows = try await sql.select().column("active_spiffe_id").from("packages")
                .where("active_spiffe_id", .in, spiffeIDs).all()
            return Set(try rows.map { try $0.decode(column: "active_spiffe_id", as: String.self) })
        }
    }

    static func insert(
        _ package: PackageRecord, audit: AuditRecord, event: EventRecord, in sql: any SQLDatabase, isPostgres: Bool
    ) async throws {
        try await sql.insert(into: "packages").model(package).run()
        if package.componentType == .poller {
            try await sql.insert(into: "pollers")
                .columns("name", "spiffe_id", "site", "package_id", "status", "created_at")
                .values(
                    SQLBind(package.name), SQLBind(package.spiffeID), SQLBind(package.site),
                    SQLBind(package.id), SQLBind("pending"), SQLBind(package.createdAt)
                )
                .onConflict(with: ["name"]) {
                    $0
                        .set(excludedValueOf: "package_id").set(excludedValueOf: "site")
                        .set(excludedValueOf: "spiffe_id").set("status", to: "pending")
                }
                .run()
        }
        try await Store.append(audit: audit, event: event, in: sql, isPostgres: isPostgres)
    }

    public func package(id: String) async throws -> PackageRecord? {
        try await read { sql in
            try await sql.select().column("*").from("packages").where("id", .equal, id)
                .first(decoding: PackageRecord.self, with: rowDecoder)
        }
    }

    public func packageByTokenHash(_ hash: String) async throws -> PackageRecord? {
        try await read { sql in
            try await sql.select().column("*").from("packages").where("token_hash", .equal, hash)
                .first(decoding: PackageRecord.self, with: rowDecoder)
        }
    }

    /// A poller's agent and checker packages still waiting to be joined (Created or Delivered, not expired).
    public func pendingPackages(poller: String, at now: Int64) async throws -> [PackageRecord] {
        try await read { sql in
            try await sql.select().column("*").from("packages")
                .where("poller_name", .equal, poller)
                .where("status", .in, [PackageStatus.created.rawValue, PackageStatus.delivered.rawValue])
                .where("expires_at", .greaterThan, now)
                .orderBy("created_at").all(decoding: PackageRecord.self, with: rowDecoder)
        }
    }

    /// What an agent's or checker's creation needs of the poller it names, in one read: nil when no live poller
    /// package has that name, else the address the poller advertised (nil before it attested).
    public func liveParent(named name: String) async throws -> LiveParent? {
        try await read { sql in
            let row = try await sql.select()
                .column(SQLColumn("advertise_address", table: "pollers"))
                .from("packages")
                .join(
                    "pollers", method: SQLJoinMethod.left, on: SQLColumn("name", table: "pollers"), .equal,
                    SQLColumn("name", table: "packages")
                )
                .where(SQLColumn("component_type", table: "packages"), .equal, SQLBind(ComponentType.poller.rawValue))
                .where(SQLColumn("name", table: "packages"), .equal, SQLBind(name))
                .where(SQLColumn("status", table: "packages"), .in, SQLBind.group(PackageStatus.live.map(\.rawValue)))
                .first()
            return try row.map {
                LiveParent(advertiseAddress: try $0.decode(column: "advertise_address", as: String?.self))
            }
        }
    }

    /// A live package of type poller with this name, if any (agents and checkers name their poller).
    public func livePoller(named name: String) async throws -> PackageRecord? {
        try await read { sql in
            try await sql.select().column("*").from("packages")
                .where("component_type", .equal, ComponentType.poller.rawValue)
                .where("name", .equal, name)
                .where("status", .in, PackageStatus.live.map(\.rawValue))
                .first(decoding: PackageRecord.self, with: rowDecoder)
        }
    }

    /// `query` narrowed by every field of `filter` except the status and the cursor.
    static func filtered(_ query: SQLSelectBuilder, by filter: PackageFilter, isPostgres: Bool) -> SQLSelectBuilder {
        var query = query
        if let type = filter.componentType { query = query.where("component_type", .equal, type.rawValue) }
        if let poller = filter.pollerName { query = query.where("poller_name", .equal, poller) }
        if let site = filter.site { query = query.where("site", .equal, site) }
        if let part = filter.nameContains?.lowercased(), !part.isEmpty {
            // A position test, not LIKE, so `%` and `_` in the search are plain characters.
            let position = SQLFunction(isPostgres ? "strpos" : "instr", args: SQLColumn("name"), SQLBind(part))
            query = query.where(position, .greaterThan, SQLLiteral.numeric("0"))
        }
        return query
    }

    /// Newest first, filtered, one page; keyset pagination so a deep page costs what the first does.
    public func listPackages(_ filter: PackageFilter) async throws -> Page<PackageRecord> {
        let limit = max(1, min(filter.limit, 1000))
        let rows = try await read { [isPostgres] sql in
            var query = Self.filtered(sql.select().column("*").from("packages"), by: filter, isPostgres: isPostgres)
            if let status = filter.status { query = query.where("status", .equal, status.rawValue) }
            if let cursor = filter.cursor {
                query = query.where {
                    $0.where("created_at", .lessThan, cursor.createdAt)
                        .orWhere { $0.where("created_at", .equal, cursor.createdAt).where("id", .lessThan, cursor.id) }
                }
            }
            return try await query.orderBy("created_at", .descending).orderBy("id", .descending)
                .limit(limit + 1).all(decoding: PackageRecord.self, with: rowDecoder)
        }
        let items = Array(rows.prefix(limit))
        let next = rows.count > limit ? items.last.map { PageCursor(createdAt: $0.createdAt, id: $0.id).token } : nil
        return Page(items: items, nextCursor: next)
    }

    /// Moves a package from one of `allowed` states with one conditional update, its audit row and its event,
    /// all in one transaction. A package in another state is a conflict; a missing one is not found.
    func transitionPackage(
        id: String, from allowed: [PackageStatus], set changes: [String: any SQLExpression],
        conditions: [any SQLExpression] = [],
        audit: AuditRecord, event: @escaping @Sendable (PackageRecord) -> EventRecord
    ) async throws -> PackageRecord {
        try await transaction { [isPostgres] sql in
            try await Store.transitionPackage(
                id: id, from: allowed, set: changes, conditions: conditions, audit: audit, event: event, in: sql,
                isPostgres: isPostgres)
        }
    }

    /// The same move inside a transaction a caller already holds (an approval that revokes the identity
    /// the machine held before).
    static func transitionPackage(
        id: String, from allowed: [PackageStatus], set changes: [String: any SQLExpression],
        conditions: [any SQLExpression] = [],
        audit: AuditRecord, event: @escaping @Sendable (PackageRecord) -> EventRecord,
        in sql: any SQLDatabase, isPostgres: Bool
    ) async throws -> PackageRecord {
        let updated = try await movePackage(id: id, from: allowed, set: changes, conditions: conditions, in: sql)
        guard let updated else {
            let current = try await sql.select().column("status").from("packages").where("id", .equal, id)
                .first(decodingColumn: "status", as: String.self)
            guard let current else { throw StoreError(.notFound, "no package with id \(id)") }
            throw StoreError(
                .conflict,
                "package \(id) is \(current); this needs it to be \(allowed.map(\.rawValue).joined(separator: " or "))"
            )
        }
        try await Store.append(audit: audit, event: event(updated), in: sql, isPostgres: isPostgres)
        if updated.status == .revoked {
            try await Store.cascadeRevocation(of: updated, audit: audit, event: event, in: sql, isPostgres: isPostgres)
        }
        return updated
    }

    /// The conditional update alone: the package as it is after the move, or nil when it was in none of `allowed`
    /// (or is not there).
    static func movePackage(
        id: String, from allowed: [PackageStatus], set changes: [String: any SQLExpression],
        conditions: [any SQLExpression] = [], in sql: any SQLDatabase
    ) async throws -> PackageRecord? {
        var update = sql.update("packages")
        for (column, value) in changes.sorted(by: { $0.key < $1.key }) {
            update = update.set(SQLIdentifier(column), to: value)
        }
        update = update.where("id", .equal, id).where("status", .in, allowed.map(\.rawValue))
        for condition in conditions { update = update.where(condition) }
        return try await update.returning(SQLLiteral.all).first(decoding: PackageRecord.self, with: rowDecoder)
    }

    /// In the revoking transaction: the package's issued certificates are marked revoked; a revoked poller
    /// package marks its poller revoked and revokes every live agent and checker package it serves (their SVIDs
    /// come from its CA), each with its own audit row (`reason`: the poller) and `package.revoked` event.
    static func cascadeRevocation(
        of package: PackageRecord, audit: AuditRecord, event: @Sendable (PackageRecord) -> EventRecord,
        in sql: any SQLDatabase, isPostgres: Bool
    ) async throws {
        let now = package.revokedAt ?? Clock.nowMillis()
        try await sql.update("issued_identities").set("revoked_at", to: now)
            .where("package_id", .equal, package.id).where(SQLIdentifier("revoked_at"), .is, SQLLiteral.null).run()
        guard package.componentType == .poller else { return }
        try await sql.update("pollers").set("status", to: "revoked")
            .where("name", .equal, package.name).where("package_id", .equal, package.id).run()
        let reason = "its poller \(package.name) was revoked"
        let served = try await sql.update("packages")
            .set("status", to: PackageStatus.revoked.rawValue).set("revoked_at", to: now)
            .set("revoked_by", to: package.revokedBy.map { SQLBind($0) as any SQLExpression } ?? SQLLiteral.null)
            .set("revoke_reason", to: reason)
            .set("active_spiffe_id", to: SQLLiteral.null).set("token_ciphertext", to: SQLLiteral.null).set(
                "entry_id", to: SQLLiteral.null
            )
            .where("poller_name", .equal, package.name)
            .where(
                "status", .in,
                [PackageStatus.created.rawValue, PackageStatus.delivered.rawValue, PackageStatus.activated.rawValue]
            )
            .returning(SQLLiteral.all)
            .all(decoding: PackageRecord.self, with: rowDecoder)
        for agent in served {
            var row = audit
            row.targetID = agent.id
            row.reason = reason
            try await Store.append(audit: row, event: event(agent), in: sql, isPostgres: isPostgres)
        }
    }

    /// Redeems a join token: one conditional update, so exactly one caller wins even across replicas.
    /// Returns the package that moved to Activated, or nil (unknown, used, expired or revoked — the same to
    /// the caller; `reasonForFailedRedemption` tells the audit log which).
    public func redeem(
        tokenHash: String, componentType: ComponentType, at now: Int64, fromIP: String?, spiffeID: String?,
        issued: [IssuedCertificate] = [], advertise: String? = nil,
        audit: @escaping @Sendable (PackageRecord) -> AuditRecord,
        event: @escaping @Sendable (PackageRecord) -> EventRecord
    ) async throws -> PackageRecord? {
        try await transaction { [isPostgres] sql in
            let won = try await sql.update("packages")
                .set("status", to: PackageStatus.activated.rawValue)
                .set("activated_at", to: now)
                .set("activated_from_ip", to: fromIP.map { SQLBind($0) as any SQLExpression } ?? SQLLiteral.null)
                .set("activated_spiffe_id", to: spiffeID.map { SQLBind($0) as any SQLExpression } ?? SQLLiteral.null)
                .where("token_hash", .equal, tokenHash)
                .where("component_type", .equal, componentType.rawValue)
                .where("status", .in, [PackageStatus.created.rawValue, PackageStatus.delivered.rawValue])
                .where("expires_at", .greaterThan, now)
                .returning(SQLLiteral.all)
                .first(decoding: PackageRecord.self, with: rowDecoder)
            guard let won else { return nil }
            // In the same transaction: the certificates handed out, and the poller now active.
            try await Store.insertIssued(issued, spiffeID: won.spiffeID, packageID: won.id, at: now, in: sql)
            if won.componentType == .poller {
                var update = sql.update("pollers").set("status", to: "active").set("last_contact_at", to: now)
                    .set("last_contact_from", to: fromIP.map { SQLBind($0) as any SQLExpression } ?? SQLLiteral.null)
                if let advertise { update = update.set("advertise_address", to: advertise) }
                try await update.where("name", .equal, won.name).where("package_id", .equal, won.id).run()
            }
            try await Store.append(audit: audit(won), event: event(won), in: sql, isPostgres: isPostgres)
            return won
        }
    }

    /// Why a redemption failed, for the audit log only.
    public func reasonForFailedRedemption(tokenHash: String, componentType: ComponentType, at now: Int64) async throws
        -> (reason: String, packageID: String?)
    {
        let package = try await packageByTokenHash(tokenHash)
        return (
            PackageRecord.redemptionRefusal(of: package, componentType: componentType, at: now)
                ?? "lost a race to another redemption", package?.id
        )
    }

    /// Live packages past their TTL, oldest expiry first, at most `limit`: an index range scan, so the cost
    /// follows the number of expired rows, not the size of the table.
    public func packagesDue(at now: Int64, limit: Int) async throws -> [String] {
        try await read { sql in
            try await sql.select().column("id").from("packages")
                .where("status", .in, [PackageStatus.created.rawValue, PackageStatus.delivered.rawValue])
                .where("expires_at", .lessThanOrEqual, now)
                .orderBy("expires_at").limit(limit)
                .all(decodingColumn: "id", as: String.self)
        }
    }

    /// Appends an audit row and an event. On PostgreSQL, event ids are taken under a transaction lock so
    /// they become visible in id order and a cursor reader never skips one that commits late.
    static func append(audit: AuditRecord, event: EventRecord?, in sql: any SQLDatabase, isPostgres: Bool) async throws
    {
        try await sql.insert(into: "audit_log").model(audit).run()
        guard let event else { return }
        try await append(event: event, in: sql, isPostgres: isPostgres)
    }

    /// Event rows, their ids in this order. On SQLite one insert. On PostgreSQL two statements however many: the first
    /// as `append(event:)` writes one (taking the event-order lock, held to COMMIT, and notifying with its type), the
    /// rest in one insert; each other type among the rest is notified too, so every type committed is heard.
    static func append(events: [EventRecord], in sql: any SQLDatabase, isPostgres: Bool) async throws {
        guard let first = events.first else { return }
        // SQLite's single writer already orders the commits: every row in one statement.
        guard isPostgres else { return try await sql.insert(into: "events").models(events).run() }
        try await append(event: first, in: sql, isPostgres: isPostgres)
        guard events.count > 1 else { return }
        try await sql.insert(into: "events").models(Array(events.dropFirst())).run()
        var notified: Set<String> = [first.type]
        for event in events.dropFirst() where notified.insert(event.type).inserted {
            try await sql.raw("SELECT pg_notify(\(bind: Store.eventChannel), \(bind: event.type))").run()
        }
    }

    /// An event row alone; on PostgreSQL it takes the event-order lock, held to COMMIT.
    static func append(event: EventRecord, in sql: any SQLDatabase, isPostgres: Bool) async throws {
        guard isPostgres else {
            try await sql.insert(into: "events").model(event).run()
            return
        }
        // Under the event-order lock until COMMIT (so readers never pass a later id committed before an earlier
        // one), with the notification every listening replica gets at commit (`Store.listenForEvents`): one
        // round trip, the function migration 4 made.
        try await sql.raw(
            "SELECT muster_append_event(\(bind: event.at), \(bind: event.type), \(bind: event.subject), \(bind: event.payload))"
        ).run()
    }
}

/// A poller an agent's or checker's package names, as its creation reads it (`Store.liveParent(named:)`).
public struct LiveParent: Sendable, Equatable {
    /// Where the poller said it listens; nil before it attested.
    public let advertiseAddress: String?
}
