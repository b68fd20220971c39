import Foundation
import MusterIdentity
import MusterStore

/// One change a poller's package stream carries.
public enum PollerPackageChange: Sendable {
    case pending(PackageRecord)
    case revoked(PackageRecord)
    /// An operator's decision on a request the poller relayed; approved ones carry the identity's package.
    case decision(EnrollmentRecord, PackageRecord?)
    /// The stream has caught up: everything before its cursor was sent, and changes now come as they happen.
    /// Sent once a stream; from then on the open stream is the poller's contact, so it sends no heartbeat.
    case live
}

/// The credential a poller called with, as the transport verified it: its parsed ID and its SVID's serial.
public struct PollerCredential: Sendable {
    public let name: String
    public let spiffeID: SPIFFEID
    public let serial: String

    public init(name: String, spiffeID: SPIFFEID, serial: String) {
        self.name = name
        self.spiffeID = spiffeID
        self.serial = serial
    }
}

extension PackageService {
    /// The poller a verified credential names, if Core knows it as active and issued this very certificate to
    /// it: the leaf's serial must be on record for the poller's current package and not revoked, so an SVID of
    /// a revoked poller stays dead when its name is used again. A refused certificate is audited.
    /// A `heartbeat` (a call that changes nothing but the last contact) may be admitted on that verdict as
    /// `PollerStandings` keeps it, without reading the store; every other call reads it.
    public func activePoller(_ credential: PollerCredential, from ip: String, heartbeat: Bool = false) async throws
        -> String
    {
        try await DomainError.mapping {
            let name = credential.name
            let spiffeID = credential.spiffeID.description
            if heartbeat, standings.admits(name, serial: credential.serial, spiffeID: spiffeID) {
                contacts.note(name, at: Clock.nowMillis(), from: ip)
                return name
            }
            let generation = standings.generation
            let poller = try await store.poller(named: name)
            guard let poller, poller.status == "active", poller.spiffeID == spiffeID else {
                await refused(credential, from: ip, reason: "poller is \(poller?.status ?? "unknown to Core")")
                throw DomainError(.permissionDenied, "poller \(name) is not active (revoked, or never attested)")
            }
            let issued = try await store.issued(serial: credential.serial)
            guard let issued, issued.kind == "svid", issued.spiffeID == spiffeID, issued.packageID == poller.packageID,
                issued.revokedAt == nil
            else {
                let reason =
                    issued == nil
                    ? "not issued by Core" : (issued?.revokedAt != nil ? "revoked" : "issued to another package")
                await refused(credential, from: ip, reason: "SVID serial \(credential.serial) \(reason)")
                throw DomainError(
                    .permissionDenied, "this SVID of poller \(name) is not current (revoked or superseded)")
            }
            standings.remember(name, serial: credential.serial, spiffeID: spiffeID, readAt: generation)
            contacts.note(name, at: Clock.nowMillis(), from: ip)
            return name
        }
    }

    /// Audits a poller credential Core refused, under the refusal budget of its source address.
    private func refused(_ credential: PollerCredential, from ip: String, reason: String) async {
        await auditor.record(
            AuditRecord(
                at: Clock.nowMillis(), actor: "anonymous", sourceIP: ip, action: "grpc.refused", targetType: "poller",
                targetID: credential.name, outcome: "denied", reason: reason,
                details: ["spiffe_id": credential.spiffeID.description]
            ), source: ip)
    }

    /// The poller's packages from `cursor` on: with cursor 0 a snapshot of its pending agent/checker packages
    /// first; then every later creation or revocation among them, in event order. A pending package
    /// moves Created → Delivered (via poller) as it is sent. `send` gets each change with its cursor.
    /// Events up to the feed's position when the stream started are read from the store; later ones come
    /// from the feed, which reads each event once for all streams. Once caught up the stream says it is `.live`;
    /// while it stays open it counts as the poller's contact (from `address`).
    public func watch(
        poller name: String, from cursor: Int64, address: String? = nil,
        send: @Sendable (Int64, PollerPackageChange) async throws -> Void
    ) async throws {
        try await contacts.whileStreaming(name, from: address) {
            try await stream(poller: name, from: cursor, send: send)
        }
    }

    private func stream(
        poller name: String, from cursor: Int64, send: @Sendable (Int64, PollerPackageChange) async throws -> Void
    ) async throws {
        let subscription = try await feed.subscribe(poller: name)
        defer { subscription.cancel() }
        var cursor = cursor
        if cursor == 0 {
            cursor = try await store.lastEventID()
            let pending = try await store.pendingPackages(poller: name, at: Clock.nowMillis())
                .filter { $0.deliveredVia != Self.enrollmentDelivery }
            try await markPulled(pending, by: name)
            for record in pending { try await send(cursor, .pending(record)) }
            for enrollment in try await store.approvedEnrollments(poller: name) {
                try await send(cursor, .decision(enrollment, try await package(of: enrollment)))
            }
        }
        var live = false
        while !Task.isCancelled {
            // What happened before the subscription, from the store; it has no events past its position.
            let position = subscription.position
            while cursor < position {
                let due = try await store.eventsWithPackages(
                    after: cursor, limit: 100, packageTypes: Self.packageEvents
                )
                .filter { ($0.event.id ?? 0) <= position }
                guard !due.isEmpty else { break }
                var items: [FeedEvent] = []
                for row in due {
                    if let item = try await Self.feedEvent(row, store: store) { items.append(item) }
                }
                try await deliver(items, to: name, send: send)
                cursor = due.last?.event.id ?? cursor
            }
            if !live {
                try await send(cursor, .live)
                live = true
            }
            // Then the feed, until the stream ends or falls so far behind that it reads from the store again.
            while let items = await subscription.next(), !items.isEmpty {
                let due = items.filter { $0.id > cursor }
                try await deliver(due, to: name, send: send)
                cursor = due.last?.id ?? cursor
            }
            subscription.resynchronise()
        }
    }

    /// Sends the events among `items` that concern the named poller, in order. The packages among them are marked
    /// pulled first, together (marked first: a resumed stream re-sends Delivered packages, so nothing is lost if a
    /// send fails). A revocation of the poller itself ends the stream once what came before it is sent.
    func deliver(
        _ items: [FeedEvent], to name: String, send: @Sendable (Int64, PollerPackageChange) async throws -> Void
    ) async throws {
        var changes: [(id: Int64, change: PollerPackageChange)] = []
        var refusal: (any Error)?
        for item in items {
            do {
                if let change = try Self.change(item, for: name) { changes.append((item.id, change)) }
            } catch {
                refusal = error
                break
            }
        }
        try await markPulled(
            changes.compactMap { if case .pending(let record) = $0.change { record } else { nil } }, by: name)
        for (id, change) in changes { try await send(id, change) }
        if let refusal { throw refusal }
    }

    /// One event as the named poller's stream sends it, if it concerns that poller. Expiry is not sent: the
    /// poller expires packages by their own expiry time, and a token it redeemed before that time (perhaps while
    /// Core was away) must not be undone by Core's reaper. Throws if the event revokes the poller itself.
    static func change(_ item: FeedEvent, for name: String) throws -> PollerPackageChange? {
        switch item.subject {
        case .enrollment(let enrollment, let package):
            guard enrollment.pollerName == name else { return nil }
            return .decision(enrollment, package)
        case .package(let record):
            if record.componentType == .poller, record.name == name, item.type == "package.revoked" {
                throw DomainError(.permissionDenied, "poller \(name) was revoked")
            }
            guard record.pollerName == name else { return nil }
            guard item.type == "package.created" else { return .revoked(record) }
            // An enrollment's package reaches the poller with its approval, not as a token package.
            guard record.status == .created || record.status == .delivered,
                record.deliveredVia != Self.enrollmentDelivery
            else { return nil }
            return .pending(record)
        }
    }

    /// An event with its subject, if it is one package streams carry: a package event's package came with it (nil if
    /// there is none); an enrollment decision's request, and an approval's package, are looked up.
    static func feedEvent(_ row: EventWithPackage, store: Store) async throws -> FeedEvent? {
        let event = row.event
        guard let id = event.id else { return nil }
        if decisionEvents.contains(event.type) {
            guard let enrollment = try await store.enrollment(id: event.subject) else { return nil }
            var package: PackageRecord?
            if event.type == "enrollment.approved", let packageID = enrollment.packageID {
                package = try await store.package(id: packageID)
            }
            return FeedEvent(id: id, type: event.type, subject: .enrollment(enrollment, package))
        }
        guard packageEvents.contains(event.type), let record = row.package else { return nil }
        return FeedEvent(id: id, type: event.type, subject: .package(record))
    }

    /// The enrollment events a poller's stream carries (to the poller that relayed the request).
    static let decisionEvents: Set<String> = ["enrollment.approved", "enrollment.denied", "enrollment.expired"]
    /// The package events a poller's stream carries.
    static let packageEvents: Set<String> = ["package.created", "package.revoked"]
    /// Every event type a poller's stream carries: the only ones the package feed reads and wakes for
    /// (`EventHub.listed`).
    public static let streamedEvents = decisionEvents.union(packageEvents)

    func package(of enrollment: EnrollmentRecord) async throws -> PackageRecord? {
        guard let id = enrollment.packageID else { return nil }
        return try await store.package(id: id)
    }

    /// Created → Delivered (via poller) for packages about to be sent to their poller. A stream's packages go
    /// together, and pulls of many streams at once (snapshots as a fleet reconnects, a bulk create, packages created
    /// one after another) share one transaction (`pulls`, a group commit); each still gets its own audit row and
    /// event. A package downloaded or revoked meanwhile is left as it is.
    func markPulled(_ records: [PackageRecord], by poller: String) async throws {
        let created = records.filter { $0.status == .created }
        _ = try await pulls.submit(contentsOf: created.map { Pull(record: $0, poller: poller) })
    }

    /// One group of pulls in one transaction; answers, for each, whether it moved.
    static func commitPulls(_ batch: [Pull], store: Store, events: EventHub, metrics: CoreMetrics) async throws
        -> [Bool]
    {
        let now = Clock.nowMillis()
        let pulled = batch.map { pull in
            PulledPackage(
                created: pull.record, at: now,
                audit: AuditRecord(
                    at: now, actor: "poller:\(pull.poller)", sourceIP: nil, action: "package.pull",
                    targetType: "package", targetID: pull.record.id)
            ) { delivered in Self.event("package.delivered", PackageView(delivered, joinCommand: nil), at: now) }
        }
        let moved = try await DomainError.mapping { try await store.markPulledTogether(pulled, at: now) }
        // Delivered is not an event the streams carry: the package feed sleeps through this ring.
        if !moved.isEmpty { events.ring(types: ["package.delivered"]) }
        for record in moved { metrics.packageTransition(record.status.rawValue, type: record.componentType) }
        let ids = Set(moved.map(\.id))
        return batch.map { ids.contains($0.record.id) }
    }
}

/// A package a stream is about to send to its poller, waiting for the group commit of its Created → Delivered.
struct Pull: Sendable {
    /// The package as the stream holds it, Created.
    let record: PackageRecord
    let poller: String
}
