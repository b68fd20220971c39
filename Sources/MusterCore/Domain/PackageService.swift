import Foundation
import Logging
import MusterConcurrency
import MusterIdentity
import MusterStore

/// What an operator asks for when creating a package (already shape-checked by the HTTP layer).
public struct PackageRequest: Sendable {
    public var name: String
    public var componentType: ComponentType
    public var pollerName: String?
    public var site: String
    public var ttlSeconds: Int64
    public var selectors: [String]
    public var notes: String
    public var metadata: [String: String]

    public init(
        name: String, componentType: ComponentType, pollerName: String? = nil, site: String = "default",
        ttlSeconds: Int64 = Int64(JoinToken.defaultTTL), selectors: [String] = [], notes: String = "",
        metadata: [String: String] = [:]
    ) {
        self.name = name
        self.componentType = componentType
        self.pollerName = pollerName
        self.site = site
        self.ttlSeconds = ttlSeconds
        self.selectors = selectors
        self.notes = notes
        self.metadata = metadata
    }
}

/// The package lifecycle (DESIGN.md): each transition is one transaction with one audit row and one event.
public struct PackageService: Sendable {
    let store: Store
    let sealer: TokenSealer
    let identity: CoreIdentity
    let events: EventHub
    let metrics: CoreMetrics
    let logger: Logger
    /// Lifetime of the leaf SVIDs Core issues (pollers').
    let leafTTL: TimeInterval
    /// Lifetime of the downstream CAs Core issues to pollers.
    let pollerCATTL: TimeInterval
    /// Where refusals of unauthenticated or unverified callers are audited, under a budget per source.
    public let auditor: RefusalAuditor
    /// The one reader of events behind every poller's package stream (run it as a service).
    public let feed: PollerFeed
    /// The pollers' last contacts, written together (run it as a service: it does the writing).
    public let contacts: PollerContacts
    /// Poller SVIDs recently found current, which admit heartbeats without a read of the store.
    let standings: PollerStandings
    /// Packages' Created → Delivered as their pollers' streams send them, committed in groups.
    let pulls: GroupCommit<Pull, Bool>

    public init(
        store: Store, sealer: TokenSealer, identity: CoreIdentity, events: EventHub, metrics: CoreMetrics,
        logger: Logger,
        leafTTL: TimeInterval = 3600, pollerCATTL: TimeInterval = 24 * 3600, auditor: RefusalAuditor? = nil
    ) {
        self.auditor = auditor ?? RefusalAuditor(store: store, logger: logger)
        self.contacts = PollerContacts(store: store, logger: logger)
        self.leafTTL = leafTTL
        self.pollerCATTL = pollerCATTL
        self.store = store
        self.sealer = sealer
        self.identity = identity
        self.events = events
        self.metrics = metrics
        self.logger = logger
        let standings = PollerStandings()
        self.standings = standings
        // A group's transaction holds the event-order lock while it writes its events (on PostgreSQL), so groups
        // stay small enough not to hold other replicas' creates back for long. While pulls keep coming (packages
        // created one after another, each pulled as soon as it commits) a group waits up to 20 ms for company, so
        // a create is not followed by a write transaction of its own: a package reaches its poller at most 20 ms
        // later, and a pull after a quiet spell goes at once.
        self.pulls = GroupCommit(maximumGroup: 200, linger: .milliseconds(20)) { [store, events, metrics] batch in
            try await Self.commitPulls(batch, store: store, events: events, metrics: metrics)
        }
        self.feed = PollerFeed(events: events, metrics: metrics, logger: logger) { [store] row in
            let item = try await Self.feedEvent(row, store: store)
            // A poller's own package was created or revoked (here or on another replica): its heartbeats are
            // checked against the store again.
            if case .package(let record)? = item?.subject, record.componentType == .poller {
                standings.forget(record.name)
            }
            return item
        }
    }

    public func create(_ request: PackageRequest, by principal: Principal) async throws -> PackageView {
        try await DomainError.mapping { try await createPackage(request, by: principal, revealing: false).view }
    }

    /// Creates a package, and for the operator's hand-over page the one-line join with the token in it (agents and
    /// checkers; nil for pollers). The token is in no stored row but the sealed one; the audit row says it was shown.
    public func createForHandOver(_ request: PackageRequest, by principal: Principal) async throws -> (
        view: PackageView, joinLine: String?
    ) {
        try await DomainError.mapping {
            let (view, record, token) = try await createPackage(request, by: principal, revealing: true)
            let address = try await record.pollerName.asyncMap { try await store.poller(named: $0)?.advertiseAddress }
            return (view, joinCommand(record, pollerAddress: address ?? nil, token: token.secret))
        }
    }

    public func get(id: String) async throws -> PackageView {
        try await DomainError.mapping {
            guard let record = try await store.package(id: id) else {
                throw DomainError(.notFound, "no package with id \(id)")
            }
            return PackageView(record, joinCommand: try await joinCommand(for: record))
        }
    }

    public func list(_ filter: PackageFilter) async throws -> (items: [PackageView], nextCursor: String?) {
        try await DomainError.mapping { try await listPackages(filter) }
    }

    private func listPackages(_ filter: PackageFilter) async throws -> (items: [PackageView], nextCursor: String?) {
        let page = try await store.listPackages(filter)
        var addresses: [String: String?] = [:]
        var items: [PackageView] = []
        items.reserveCapacity(page.items.count)
        for record in page.items {
            var command: String?
            if let poller = record.pollerName {
                if addresses[poller] == nil {
                    addresses[poller] = .some(try await store.poller(named: poller)?.advertiseAddress)
                }
                command = joinCommand(record, pollerAddress: addresses[poller] ?? nil)
            }
            items.append(PackageView(record, joinCommand: command))
        }
        return (items, page.nextCursor)
    }

    public func revoke(id: String, reason: String?, by principal: Principal) async throws -> PackageView {
        try await DomainError.mapping {
            let now = Clock.nowMillis()
            let audit = AuditRecord(
                at: now, actor: principal.name, sourceIP: principal.sourceIP, action: "package.revoke",
                targetType: "package",
                targetID: id, reason: reason
            )
            // The entries the revocation ends (the package's, and for a poller those of the packages it serves).
            let entries = try await store.liveEntryIDs(of: id, cascading: true)
            let record = try await transition("package.revoked", at: now) { event in
                try await store.revokePackage(
                    id: id, at: now, by: principal.name, reason: reason, audit: audit, event: event)
            }
            if record.componentType == .poller { standings.forget(record.name) }
            await deleteEntries(entries)
            logger.notice("package revoked", metadata: ["package": "\(id)", "actor": "\(principal.name)"])
            return PackageView(record, joinCommand: try await joinCommand(for: record))
        }
    }

    /// Expires one package past its TTL; false if it moved on meanwhile (redeemed, revoked, another replica).
    func expire(id: String, at now: Int64) async throws -> Bool {
        let audit = AuditRecord(
            at: now, actor: "system:reaper", sourceIP: nil, action: "package.expire", targetType: "package",
            targetID: id)
        do {
            let entries = try await DomainError.mapping { try await store.liveEntryIDs(of: id, cascading: false) }
            _ = try await transition("package.expired", at: now) { event in
                try await store.expirePackage(id: id, at: now, audit: audit, event: event)
            }
            await deleteEntries(entries)
            return true
        } catch let error as DomainError where error.code == .conflict || error.code == .notFound {
            return false
        }
    }

    /// Ends registration entries at the identity authority once the store has committed their package's end. A
    /// failure cannot undo that commit: it is logged (the package rows no longer point at the entries).
    func deleteEntries(_ ids: [String]) async {
        guard !ids.isEmpty else { return }
        do {
            for case .failure(let error) in try await identity.authority.batchDeleteEntries(ids: ids) {
                logger.warning("identity authority kept an entry", metadata: ["error": "\(error.message)"])
            }
        } catch {
            logger.warning(
                "identity authority unreachable; entries not deleted",
                metadata: ["count": "\(ids.count)", "error": "\(error)"])
        }
    }

    /// Runs one of the store's named transitions with the outbox event `type`, then wakes event readers and
    /// counts the move. A store refusal comes back as a `DomainError` (`conflict`, `notFound`, `unavailable`).
    func transition(
        _ type: String, at now: Int64, _ move: (@escaping Store.PackageEvent) async throws -> PackageRecord
    ) async throws -> PackageRecord {
        let record = try await DomainError.mapping {
            try await move { updated in Self.event(type, PackageView(updated, joinCommand: nil), at: now) }
        }
        events.ring()
        metrics.packageTransition(record.status.rawValue, type: record.componentType)
        return record
    }

    func joinCommand(for record: PackageRecord) async throws -> String? {
        guard let poller = record.pollerName else { return nil }
        return joinCommand(record, pollerAddress: try await store.poller(named: poller)?.advertiseAddress)
    }

    /// The one-line join an installer runs beside the extracted package; the token stays in its file, never in
    /// the command line. Every value is checked to a safe character set and single-quoted; an address that
    /// fails the advertised-address rule is not rendered at all.
    /// With `token`, the line feeds it on standard input from the shell's `printf` builtin (so it is in no
    /// process's arguments) and is complete on its own.
    func joinCommand(_ record: PackageRecord, pollerAddress: String?, token: String? = nil) -> String? {
        guard record.componentType != .poller, let poller = record.pollerName, (try? MusterIDs.checkName(poller)) != nil
        else { return nil }
        let address = pollerAddress.flatMap { try? HostPort.validateAdvertised($0).text } ?? "POLLER_ADDRESS"
        let join =
            "muster-agent join --poller \(Self.shellQuoted(address)) --poller-id \(Self.shellQuoted(poller))"
            + " --token-file \(token == nil ? "join-token" : "-") --ca-pin \(Self.shellQuoted(identity.caPin))"
        guard let token else { return join }
        return "printf '%s\\n' \(Self.shellQuoted(token)) | " + join
    }

    /// `text` in single quotes for a POSIX shell (a quote inside becomes `'\''`).
    static func shellQuoted(_ text: String) -> String { "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'" }

    /// The outbox event for a package change; its payload is the package as the API shows it (no secret).
    static func event(_ type: String, _ view: PackageView, at now: Int64) -> EventRecord {
        // Encoding a struct of strings and numbers cannot fail; "{}" only guards the impossible.
        let payload = (try? APIJSON.encode(view)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
        return EventRecord(id: nil, at: now, type: type, subject: view.id, payload: payload)
    }

    static func hex(_ bytes: [UInt8]) -> String { ByteEncoding.hex(bytes) }
}
