import Foundation
import SQLKit

/// Self-enrollment requests and their named transitions: each is one conditional update with its audit row
/// and its event in one transaction (an approval also creates the identity's package, and may revoke the
/// one the machine held before, in that same transaction).
extension Store {
    /// Records a request a poller relayed, unless its id is already stored (a relay delivers at least once) or
    /// the poller already has `pendingCap` requests pending. Returns whether the request is stored now.
    public func insertEnrollment(
        _ record: EnrollmentRecord, pendingCap: Int, audit: AuditRecord, event: EventRecord
    ) async throws -> EnrollmentInsert {
        try await transaction { [isPostgres] sql in
            if try await sql.select().column("id").from("enrollments").where("id", .equal, record.id).first() != nil {
                return .alreadyStored
            }
            let pending =
                try await sql.select().column(SQLFunction("COUNT", args: SQLLiteral.all), as: "n").from("enrollments")
                .where("poller_name", .equal, record.pollerName)
                .where("status", .equal, EnrollmentStatus.pending.rawValue)
                .first(decodingColumn: "n", as: Int64.self) ?? 0
            guard pending < pendingCap else { return .overCap }
            try await sql.insert(into: "enrollments").model(record).run()
            try await Store.append(audit: audit, event: event, in: sql, isPostgres: isPostgres)
            return .stored
        }
    }

    public enum EnrollmentInsert: Sendable { case stored, alreadyStored, overCap }

    public func enrollment(id: String) async throws -> EnrollmentRecord? {
        try await read { sql in
            try await sql.select().column("*").from("enrollments").where("id", .equal, id)
                .first(decoding: EnrollmentRecord.self, with: rowDecoder)
        }
    }

    /// Newest first, one page, keyset paged on (requested_at, id).
    public func listEnrollments(_ filter: EnrollmentFilter) async throws -> Page<EnrollmentRecord> {
        let limit = max(1, min(filter.limit, 1000))
        let rows = try await read { sql in
            var query = sql.select().column("*").from("enrollments")
            if let status = filter.status { query = query.where("status", .equal, status.rawValue) }
            if filter.decidedOnly { query = query.where("status", .notEqual, EnrollmentStatus.pending.rawValue) }
            if let poller = filter.pollerName { query = query.where("poller_name", .equal, poller) }
            if let cursor = filter.cursor {
                query = query.where {
                    $0.where("requested_at", .lessThan, cursor.createdAt)
                        .orWhere {
                            $0.where("requested_at", .equal, cursor.createdAt).where("id", .lessThan, cursor.id)
                        }
                }
            }
            return try await query.orderBy("requested_at", .descending).orderBy("id", .descending)
                .limit(limit + 1).all(decoding: EnrollmentRecord.self, with: rowDecoder)
        }
        let items = Array(rows.prefix(limit))
        let next = rows.count > limit ? items.last.map { PageCursor(createdAt: $0.requestedAt, id: $0.id).token } : nil
        return Page(items: items, nextCursor: next)
    }

    /// Other requests (any state) from the same machine ID or with the same key, newest first: what an
    /// approval's warnings are made of.
    public func relatedEnrollments(machineID: String, keyFingerprint: String, excluding id: String) async throws
        -> [EnrollmentRecord]
    {
        try await read { sql in
            try await sql.select().column("*").from("enrollments")
                .where { $0.where("machine_id", .equal, machineID).orWhere("key_fingerprint", .equal, keyFingerprint) }
                .where("id", .notEqual, id)
                .orderBy("requested_at", .descending).limit(50)
                .all(decoding: EnrollmentRecord.self, with: rowDecoder)
        }
    }

    /// The live package holding `spiffeID`, if any.
    public func livePackage(spiffeID: String) async throws -> PackageRecord? {
        try await read { sql in
            try await sql.select().column("*").from("packages").where("active_spiffe_id", .equal, spiffeID)
                .first(decoding: PackageRecord.self, with: rowDecoder)
        }
    }

    /// Pending → Approved, with the identity's package created (and the packages in `revoking` revoked) in the
    /// same transaction. A SPIFFE ID another live package holds is a conflict (the unique violation's); so is a
    /// request no longer pending or past its expiry.
    public func approveEnrollment(
        id: String, package: PackageRecord, at now: Int64, by actor: String, reason: String?,
        revoking: [String], audit: AuditRecord, event: @escaping EnrollmentEvent,
        packageAudit: AuditRecord, packageEvent: EventRecord,
        revocationAudit: AuditRecord, revocationEvent: @escaping PackageEvent
    ) async throws -> EnrollmentRecord {
        try await transaction { [isPostgres] sql in
            for old in revoking {
                var row = revocationAudit
                row.targetID = old
                _ = try await Store.transitionPackage(
                    id: old, from: [.created, .delivered, .activated],
                    set: Store.revocation(at: now, by: actor, reason: revocationAudit.reason), audit: row,
                    event: revocationEvent, in: sql, isPostgres: isPostgres)
            }
            let updated = try await Store.transitionEnrollment(
                id: id, from: [.pending],
                set: [
                    "status": SQLBind(EnrollmentStatus.approved.rawValue), "decided_at": SQLBind(now),
                    "decided_by": SQLBind(actor),
                    "decision_reason": reason.map { SQLBind($0) as any SQLExpression } ?? SQLLiteral.null,
                    "name": SQLBind(package.name), "spiffe_id": SQLBind(package.spiffeID),
                    "package_id": SQLBind(package.id),
                ],
                conditions: [SQLBinaryExpression(SQLIdentifier("expires_at"), .greaterThan, SQLBind(now))],
                audit: audit, event: event, in: sql, isPostgres: isPostgres)
            // A live package holding this SPIFFE ID fails the unique `active_spiffe_id`: a conflict (nothing
            // is read after the failed statement, which PostgreSQL would refuse in an aborted transaction).
            try await sql.insert(into: "packages").model(package).run()
            try await Store.append(audit: packageAudit, event: packageEvent, in: sql, isPostgres: isPostgres)
            return updated
        }
    }

    /// Pending → Denied, with the operator's reason.
    public func denyEnrollment(
        id: String, at now: Int64, by actor: String, reason: String, audit: AuditRecord,
        event: @escaping EnrollmentEvent
    ) async throws -> EnrollmentRecord {
        try await transaction { [isPostgres] sql in
            try await Store.transitionEnrollment(
                id: id, from: [.pending],
                set: [
                    "status": SQLBind(EnrollmentStatus.denied.rawValue), "decided_at": SQLBind(now),
                    "decided_by": SQLBind(actor), "decision_reason": SQLBind(reason),
                ],
                audit: audit, event: event, in: sql, isPostgres: isPostgres)
        }
    }

    /// Pending past its expiry → Expired.
    public func expireEnrollment(id: String, at now: Int64, audit: AuditRecord, event: @escaping EnrollmentEvent)
        async throws -> EnrollmentRecord
    {
        try await transaction { [isPostgres] sql in
            try await Store.transitionEnrollment(
                id: id, from: [.pending],
                set: [
                    "status": SQLBind(EnrollmentStatus.expired.rawValue), "decided_at": SQLBind(now),
                    "decided_by": SQLBind("system:reaper"),
                ],
                conditions: [SQLBinaryExpression(SQLIdentifier("expires_at"), .lessThanOrEqual, SQLBind(now))],
                audit: audit, event: event, in: sql, isPostgres: isPostgres)
        }
    }

    /// Approved → Activated once the identity's package was activated at its poller; nil when no approved
    /// enrollment owns the package (a package made from a token, or one already marked).
    public func activateEnrollment(
        packageID: String, at activatedAt: Int64, audit: AuditRecord, event: @escaping EnrollmentEvent
    ) async throws -> EnrollmentRecord? {
        try await transaction { [isPostgres] sql in
            guard
                let id = try await sql.select().column("id").from("enrollments")
                    .where("package_id", .equal, packageID)
                    .where("status", .equal, EnrollmentStatus.approved.rawValue)
                    .first(decodingColumn: "id", as: String.self)
            else { return nil }
            var row = audit
            row.targetID = id
            return try await Store.transitionEnrollment(
                id: id, from: [.approved],
                set: ["status": SQLBind(EnrollmentStatus.activated.rawValue), "activated_at": SQLBind(activatedAt)],
                audit: row, event: event, in: sql, isPostgres: isPostgres)
        }
    }

    /// Pending requests past their expiry, oldest first, at most `limit`.
    public func enrollmentsDue(at now: Int64, limit: Int) async throws -> [String] {
        try await read { sql in
            try await sql.select().column("id").from("enrollments")
                .where("status", .equal, EnrollmentStatus.pending.rawValue)
                .where("expires_at", .lessThanOrEqual, now)
                .orderBy("expires_at").limit(limit)
                .all(decodingColumn: "id", as: String.self)
        }
    }

    /// Approved requests of `poller` whose identity was not received yet: re-sent when its stream starts over.
    public func approvedEnrollments(poller: String) async throws -> [EnrollmentRecord] {
        try await read { sql in
            try await sql.select().column("*").from("enrollments")
                .where("poller_name", .equal, poller)
                .where("status", .equal, EnrollmentStatus.approved.rawValue)
                .all(decoding: EnrollmentRecord.self, with: rowDecoder)
        }
    }

    /// Requests pending, for the console's badge.
    public func pendingEnrollmentCount() async throws -> Int {
        try await read { sql in
            Int(
                try await sql.select().column(SQLFunction("COUNT", args: SQLLiteral.all), as: "n").from("enrollments")
                    .where("status", .equal, EnrollmentStatus.pending.rawValue)
                    .first(decodingColumn: "n", as: Int64.self) ?? 0)
        }
    }

    static func transitionEnrollment(
        id: String, from allowed: [EnrollmentStatus], set changes: [String: any SQLExpression],
        conditions: [any SQLExpression] = [], audit: AuditRecord, event: EnrollmentEvent,
        in sql: any SQLDatabase, isPostgres: Bool
    ) async throws -> EnrollmentRecord {
        var update = sql.update("enrollments")
        for (column, value) in changes.sorted(by: { $0.key < $1.key }) {
            update = update.set(SQLIdentifier(column), to: value)
        }
        update = update.where("id", .equal, id).where("status", .in, allowed.map(\.rawValue))
        for condition in conditions { update = update.where(condition) }
        guard
            let updated = try await update.returning(SQLLiteral.all)
                .first(decoding: EnrollmentRecord.self, with: rowDecoder)
        else {
            let current = try await sql.select().column("status").from("enrollments").where("id", .equal, id)
                .first(decodingColumn: "status", as: String.self)
            guard let current else { throw StoreError(.notFound, "no enrollment with id \(id)") }
            if current == EnrollmentStatus.pending.rawValue {
                throw StoreError(.conflict, "enrollment \(id) has expired")
            }
            throw StoreError(.conflict, "enrollment \(id) is \(current), not pending")
        }
        try await Store.append(audit: audit, event: event(updated), in: sql, isPostgres: isPostgres)
        return updated
    }
}
