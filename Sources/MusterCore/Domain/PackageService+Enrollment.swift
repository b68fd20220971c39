import Foundation
import MusterIdentity
import MusterStore

/// A self-enrollment request as its poller relays it.
public struct RelayedEnrollment: Sendable {
    public var id: String
    public var componentType: String
    public var requestedName: String
    public var facts: EnrollmentFacts
    public var csr: [UInt8]
    public var sourceAddress: String
    public var receivedAt: Int64

    public init(
        id: String, componentType: String, requestedName: String, facts: EnrollmentFacts, csr: [UInt8],
        sourceAddress: String, receivedAt: Int64
    ) {
        self.id = id
        self.componentType = componentType
        self.requestedName = requestedName
        self.facts = facts
        self.csr = csr
        self.sourceAddress = sourceAddress
        self.receivedAt = receivedAt
    }
}

/// What an operator sets when approving: the identity's name (the suggested one when nil), where it runs,
/// its Workload API selectors, and whether the identity the machine held before is revoked in the same step.
public struct EnrollmentApproval: Sendable {
    public var name: String?
    public var site: String
    public var selectors: [String]
    public var notes: String
    public var revokePrevious: Bool

    public init(
        name: String? = nil, site: String = "default", selectors: [String] = [], notes: String = "",
        revokePrevious: Bool = false
    ) {
        self.name = name
        self.site = site
        self.selectors = selectors
        self.notes = notes
        self.revokePrevious = revokePrevious
    }
}

extension PackageService {
    /// How long a request waits for a decision.
    public static let enrollmentLifetimeMillis: Int64 = 24 * 3600 * 1000
    /// Most requests one poller may have pending at Core (its own cap is lower; this holds a poller that lies).
    public static let maxPendingEnrollmentsPerPoller = 1000
    /// Most requests one relay call may carry.
    public static let maxEnrollmentsPerRelay = 100
    /// How an approved identity's package is marked `delivered_via`: it has no token, and its poller receives
    /// it with the decision rather than as a pending package.
    static let enrollmentDelivery = "enrollment"

    /// Records the requests a poller relayed; returns the ids stored (now or before). A request that fails a
    /// check is refused for good (left out of the answer) and audited as denied.
    public func relayEnrollments(_ items: [RelayedEnrollment], poller: String, from ip: String) async throws
        -> [String]
    {
        try await DomainError.mapping {
            var accepted: [String] = []
            for item in items where try await store(item, poller: poller) { accepted.append(item.id) }
            return accepted
        }
    }

    private func store(_ item: RelayedEnrollment, poller: String) async throws -> Bool {
        let now = Clock.nowMillis()
        let actor = "poller:\(poller)"
        let source = TextRules.printable(item.sourceAddress, limit: 64)
        func refuse(_ reason: String) async -> Bool {
            await auditor.record(
                AuditRecord(
                    at: now, actor: actor, sourceIP: source, action: "enrollment.request", targetType: "enrollment",
                    targetID: UUID(uuidString: item.id) != nil ? item.id.lowercased() : nil, outcome: "denied",
                    reason: reason), source: actor)
            logger.warning("relayed enrollment refused", metadata: ["poller": "\(poller)", "reason": "\(reason)"])
            return false
        }
        guard UUID(uuidString: item.id) != nil else { return await refuse("the request id is not a UUID") }
        guard let type = ComponentType(rawValue: item.componentType), type != .poller else {
            return await refuse("component_type must be agent or checker")
        }
        if !item.requestedName.isEmpty {
            do { try MusterIDs.checkName(item.requestedName) } catch { return await refuse(error.description) }
        }
        do { try item.facts.validate() } catch { return await refuse(error.message) }
        let fingerprint: String
        do { fingerprint = try KeyFingerprint.ofCSR(item.csr) } catch {
            return await refuse("CSR refused: \(error.message)")
        }
        let id = item.id.lowercased()
        let facts = (try? APIJSON.encode(item.facts)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
        let record = EnrollmentRecord(
            id: id, componentType: type, pollerName: poller, requestedName: item.requestedName,
            machineID: item.facts.machineID, claimed: facts, keyFingerprint: fingerprint,
            sourceAddress: source, receivedAt: min(max(item.receivedAt, 0), now), requestedAt: now,
            expiresAt: now + Self.enrollmentLifetimeMillis)
        let audit = AuditRecord(
            at: now, actor: actor, sourceIP: source, action: "enrollment.request", targetType: "enrollment",
            targetID: id,
            details: [
                "machine_id": record.machineID, "hostname": item.facts.hostname,
                "key_fingerprint": record.keyFingerprint,
            ])
        switch try await store.insertEnrollment(
            record, pendingCap: Self.maxPendingEnrollmentsPerPoller, audit: audit,
            event: Self.event("enrollment.requested", EnrollmentView(record), at: now))
        {
        case .stored:
            events.ring()
            logger.notice(
                "enrollment requested",
                metadata: [
                    "enrollment": "\(id)", "poller": "\(poller)", "machine_id": "\(record.machineID)",
                    "key_fingerprint": "\(record.keyFingerprint)",
                ])
            return true
        case .alreadyStored:
            return true
        case .overCap:
            return await refuse("poller \(poller) already has \(Self.maxPendingEnrollmentsPerPoller) requests pending")
        }
    }

    public func enrollment(id: String) async throws -> EnrollmentView {
        try await DomainError.mapping {
            guard let record = try await store.enrollment(id: id) else {
                throw DomainError(.notFound, "no enrollment with id \(id)")
            }
            return EnrollmentView(record, warnings: try await warnings(for: record))
        }
    }

    public func enrollments(_ filter: EnrollmentFilter) async throws -> (items: [EnrollmentView], nextCursor: String?) {
        try await DomainError.mapping {
            let page = try await store.listEnrollments(filter)
            var items: [EnrollmentView] = []
            for record in page.items {
                // Warnings help a decision; decided requests are shown as they were.
                let warnings = record.status == .pending ? try await warnings(for: record) : []
                items.append(EnrollmentView(record, warnings: warnings))
            }
            return (items, page.nextCursor)
        }
    }

    public func pendingEnrollmentCount() async throws -> Int {
        try await DomainError.mapping { try await store.pendingEnrollmentCount() }
    }

    /// What an operator should weigh before approving `record`, computed now.
    func warnings(for record: EnrollmentRecord) async throws -> [EnrollmentView.Warning] {
        var warnings: [EnrollmentView.Warning] = []
        let related = try await store.relatedEnrollments(
            machineID: record.machineID, keyFingerprint: record.keyFingerprint, excluding: record.id)
        for held in try await identitiesHeld(byMachineOf: record, related: related) {
            warnings.append(
                .init(
                    code: "machine_has_identity",
                    message:
                        "machine ID \(record.machineID) already holds \(held.spiffeID) (package \(held.id), "
                        + "\(held.activatedAt.map { "activated \(Timestamp.text($0))" } ?? "not collected yet")); "
                        + "approving with revoke_previous revokes it"))
        }
        for other in related where other.status == .pending {
            let same = other.keyFingerprint == record.keyFingerprint ? "key" : "machine ID"
            warnings.append(
                .init(
                    code: "duplicate_pending",
                    message: "request \(other.id) from the same \(same) is pending too"))
        }
        if related.contains(where: {
            $0.keyFingerprint == record.keyFingerprint && ($0.status == .approved || $0.status == .activated)
        }) {
            warnings.append(
                .init(code: "key_reused", message: "this key already received an identity through another request"))
        }
        let facts = EnrollmentView.facts(of: record)
        let observedHost = Self.host(of: record.sourceAddress)
        if !facts.addresses.contains(observedHost) {
            warnings.append(
                .init(
                    code: "address_mismatch",
                    message:
                        "the poller saw the request from \(observedHost), which is not among the claimed addresses"
                ))
        }
        let name = record.requestedName.isEmpty ? facts.suggestedName : record.requestedName
        if let spiffeID = try? spiffeID(for: record, name: name),
            let holder = try await store.livePackage(spiffeID: spiffeID.description)
        {
            warnings.append(
                .init(
                    code: "name_taken",
                    message: "\(spiffeID) is held by live package \(holder.id); approve with another name"))
        }
        return warnings
    }

    /// Live packages that earlier approved requests from the same machine ID hold.
    func identitiesHeld(byMachineOf record: EnrollmentRecord, related: [EnrollmentRecord]) async throws
        -> [PackageRecord]
    {
        var held: [PackageRecord] = []
        for other in related
        where other.machineID == record.machineID && (other.status == .approved || other.status == .activated) {
            if let id = other.packageID, let package = try await store.package(id: id), !package.status.isTerminal {
                held.append(package)
            }
        }
        return held
    }

    /// The address part of `host:port`, `[v6]:port` or a bare address.
    static func host(of address: String) -> String {
        if address.hasPrefix("["), let end = address.firstIndex(of: "]") {
            return String(address[address.index(after: address.startIndex)..<end])
        }
        if address.filter({ $0 == ":" }).count == 1, let colon = address.firstIndex(of: ":") {
            return String(address[..<colon])
        }
        return address
    }

    func spiffeID(for record: EnrollmentRecord, name: String) throws -> SPIFFEID {
        record.componentType == .checker
            ? try MusterIDs.checker(trustDomain: identity.trustDomain, poller: record.pollerName, name: name)
            : try MusterIDs.agent(trustDomain: identity.trustDomain, poller: record.pollerName, name: name)
    }

    /// Pending → Approved: the identity's package is created under the relaying poller, bound to the key the
    /// operator saw; the poller hears of it on its package stream and issues the SVID for exactly that key.
    public func approveEnrollment(id: String, _ approval: EnrollmentApproval, by principal: Principal) async throws
        -> EnrollmentView
    {
        try await DomainError.mapping {
            guard let record = try await store.enrollment(id: id) else {
                throw DomainError(.notFound, "no enrollment with id \(id)")
            }
            guard record.status == .pending else {
                throw DomainError(.conflict, "enrollment \(id) is \(record.status.rawValue), not pending")
            }
            let facts = EnrollmentView.facts(of: record)
            let name = approval.name ?? (record.requestedName.isEmpty ? facts.suggestedName : record.requestedName)
            let spiffeID: SPIFFEID
            do {
                try MusterIDs.checkName(name)
                spiffeID = try self.spiffeID(for: record, name: name)
            } catch let error as MusterIDs.NameError {
                throw DomainError(.invalid, error.description)
            }
            guard try await store.livePoller(named: record.pollerName) != nil else {
                throw DomainError(
                    .unprocessable, "poller \(record.pollerName), which relayed this request, is no longer live")
            }
            let related = try await store.relatedEnrollments(
                machineID: record.machineID, keyFingerprint: record.keyFingerprint, excluding: record.id)
            let revoking =
                approval.revokePrevious ? try await identitiesHeld(byMachineOf: record, related: related) : []
            let taken = "a live package already holds \(spiffeID); choose another name, or approve with revoke_previous"
            if let holder = try await store.livePackage(spiffeID: spiffeID.description),
                !revoking.contains(where: { $0.id == holder.id })
            {
                throw DomainError(.conflict, taken + " if it is this machine's old identity")
            }
            let now = Clock.nowMillis()
            let entry = try await identity.authority.batchCreateEntries([
                EntryRequest(spiffeID: spiffeID, selectors: approval.selectors, downstream: false, x509SVIDTTL: leafTTL)
            ])[0].get()
            let packageID = UUID().uuidString.lowercased()
            // No one knows a preimage of this hash: the identity can only be collected with the enrolled key.
            let unusableTokenHash = Self.hex(ByteEncoding.randomBytes(32))
            let package = PackageRecord(
                id: packageID, name: name, componentType: record.componentType, site: approval.site,
                pollerName: record.pollerName, spiffeID: spiffeID.description, activeSpiffeID: spiffeID.description,
                selectors: JSONText.array(approval.selectors), tokenHash: unusableTokenHash, entryID: entry.id,
                ttlSeconds: max(1, (record.expiresAt - now) / 1000), expiresAt: record.expiresAt, status: .delivered,
                createdBy: principal.name, createdAt: now, deliveredAt: now, deliveredVia: Self.enrollmentDelivery,
                notes: approval.notes, metadata: JSONText.object(["enrollment_id": record.id]))
            let audit = AuditRecord(
                at: now, actor: principal.name, sourceIP: principal.sourceIP, action: "enrollment.approve",
                targetType: "enrollment", targetID: record.id,
                details: [
                    "key_fingerprint": record.keyFingerprint, "spiffe_id": spiffeID.description,
                    "package_id": packageID, "revoked": revoking.map(\.id).joined(separator: ","),
                ])
            let packageAudit = AuditRecord(
                at: now, actor: principal.name, sourceIP: principal.sourceIP, action: "package.create",
                targetType: "package", targetID: packageID,
                details: [
                    "name": name, "component_type": record.componentType.rawValue, "spiffe_id": spiffeID.description,
                    "enrollment_id": record.id,
                ])
            let revocationAudit = AuditRecord(
                at: now, actor: principal.name, sourceIP: principal.sourceIP, action: "package.revoke",
                targetType: "package", targetID: nil,
                reason: "replaced by enrollment \(record.id) of the same machine")
            let approved: EnrollmentRecord
            do {
                approved = try await store.approveEnrollment(
                    id: record.id, package: package, at: now, by: principal.name, reason: nil,
                    revoking: revoking.map(\.id), audit: audit,
                    event: { Self.event("enrollment.approved", EnrollmentView($0), at: now) },
                    packageAudit: packageAudit,
                    packageEvent: Self.event("package.created", PackageView(package, joinCommand: nil), at: now),
                    revocationAudit: revocationAudit,
                    revocationEvent: { Self.event("package.revoked", PackageView($0, joinCommand: nil), at: now) })
            } catch {
                // Nothing was stored: the entry made for it goes too.
                await deleteEntries([entry.id])
                // The request's own state was checked above; a unique violation now is the name taken meanwhile.
                if let error = error as? StoreError, error.code == .conflict, error.message.hasPrefix("a record") {
                    throw DomainError(.conflict, taken)
                }
                throw error
            }
            await deleteEntries(revoking.compactMap(\.entryID))
            events.ring()
            metrics.packageTransition("created", type: record.componentType)
            logger.notice(
                "enrollment approved",
                metadata: [
                    "enrollment": "\(record.id)", "spiffe_id": "\(spiffeID)", "actor": "\(principal.name)",
                    "key_fingerprint": "\(record.keyFingerprint)",
                ])
            return EnrollmentView(approved, warnings: [])
        }
    }

    /// Pending → Denied with the operator's reason, which the agent is shown.
    public func denyEnrollment(id: String, reason: String, by principal: Principal) async throws -> EnrollmentView {
        try await DomainError.mapping {
            let now = Clock.nowMillis()
            let audit = AuditRecord(
                at: now, actor: principal.name, sourceIP: principal.sourceIP, action: "enrollment.deny",
                targetType: "enrollment", targetID: id, reason: reason)
            let record = try await store.denyEnrollment(
                id: id, at: now, by: principal.name, reason: reason, audit: audit,
                event: { Self.event("enrollment.denied", EnrollmentView($0), at: now) })
            events.ring()
            logger.notice("enrollment denied", metadata: ["enrollment": "\(id)", "actor": "\(principal.name)"])
            return EnrollmentView(record)
        }
    }

    /// Pending past 24 h → Expired; false if it was decided meanwhile.
    func expireEnrollment(id: String, at now: Int64) async throws -> Bool {
        let audit = AuditRecord(
            at: now, actor: "system:reaper", sourceIP: nil, action: "enrollment.expire", targetType: "enrollment",
            targetID: id)
        do {
            _ = try await DomainError.mapping {
                try await store.expireEnrollment(
                    id: id, at: now, audit: audit,
                    event: { Self.event("enrollment.expired", EnrollmentView($0), at: now) })
            }
            events.ring()
            return true
        } catch let error as DomainError where error.code == .conflict || error.code == .notFound {
            return false
        }
    }

    /// After a package activation: the enrollment it came from, if any, moves Approved → Activated.
    func markEnrollmentActivated(packageID: String, at activatedAt: Int64, poller: String) async throws {
        let audit = AuditRecord(
            at: Clock.nowMillis(), actor: "poller:\(poller)", sourceIP: nil, action: "enrollment.activate",
            targetType: "enrollment", targetID: nil, details: ["package_id": packageID])
        if try await store.activateEnrollment(
            packageID: packageID, at: activatedAt, audit: audit,
            event: { Self.event("enrollment.activated", EnrollmentView($0), at: activatedAt) }) != nil
        {
            events.ring()
        }
    }

    /// The outbox event for an enrollment change; its payload is the enrollment as the API shows it.
    static func event(_ type: String, _ view: EnrollmentView, at now: Int64) -> EventRecord {
        let payload = (try? APIJSON.encode(view)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
        return EventRecord(id: nil, at: now, type: type, subject: view.id, payload: payload)
    }
}
