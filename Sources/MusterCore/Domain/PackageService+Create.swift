import Foundation
import MusterIdentity
import MusterStore

/// A package ready to store: its record, the operator's view, the audit row and event of its creation, its token.
struct PreparedPackage: Sendable {
    let new: NewPackage
    let view: PackageView
    let token: JoinToken
    var record: PackageRecord { new.record }
}

extension PackageService {
    /// The most packages one bulk create may hold.
    public static let maxBulkCreate = 1000

    func createPackage(_ request: PackageRequest, by principal: Principal, revealing: Bool) async throws -> (
        view: PackageView, record: PackageRecord, token: JoinToken
    ) {
        let spiffeID = try spiffeID(for: request)
        var address: String?
        if let poller = request.pollerName {
            guard let parent = try await store.liveParent(named: poller) else {
                throw DomainError(
                    .unprocessable, "no live poller package named '\(poller)'; create the poller's package first")
            }
            address = parent.advertiseAddress
        }
        let entry = try await identity.authority.batchCreateEntries([entryRequest(request, spiffeID)])[0].get()
        let made: PreparedPackage
        do {
            made = try await prepare(
                request, spiffeID: spiffeID, entryID: entry.id, by: principal, revealing: revealing,
                pollerAddress: address, at: Clock.nowMillis())
        } catch {
            await deleteEntries([entry.id])
            throw error
        }
        do {
            try await store.createPackage(made.record, audit: made.new.audit, event: made.new.event)
        } catch let error as StoreError where error.code == .conflict {
            await deleteEntries([entry.id])
            throw DomainError(.conflict, "a live package already holds \(spiffeID); revoke it first")
        }
        created([made], by: principal)
        return (made.view, made.record, made.token)
    }

    /// Creates every package of `requests` in one transaction, or none: the first bad item (numbered from 0)
    /// refuses the whole request. Agents and checkers may name a poller whose package is in the same request.
    public func createMany(_ requests: [PackageRequest], by principal: Principal) async throws -> [PackageView] {
        try await DomainError.mapping {
            guard (1...Self.maxBulkCreate).contains(requests.count) else {
                throw DomainError(.invalid, "a bulk create holds 1 to \(Self.maxBulkCreate) packages")
            }
            let ids = try requests.enumerated().map { index, request in
                try Self.item(index) { try spiffeID(for: request) }
            }
            var seen: [SPIFFEID: Int] = [:]
            for (index, id) in ids.enumerated() {
                if let first = seen.updateValue(index, forKey: id) {
                    throw DomainError(.conflict, "items[\(first)] and items[\(index)] both name \(id)")
                }
            }
            let held = try await store.liveSpiffeIDs(among: ids.map(\.description))
            if let index = ids.firstIndex(where: { held.contains($0.description) }) {
                throw DomainError(
                    .conflict, "items[\(index)]: a live package already holds \(ids[index]); revoke it first")
            }
            let newPollers = Set(requests.filter { $0.componentType == .poller }.map(\.name))
            var addresses: [String: String?] = [:]
            for (index, poller) in requests.enumerated().compactMap({ i, r in r.pollerName.map { (i, $0) } })
            where addresses[poller] == nil && !newPollers.contains(poller) {
                guard try await store.livePoller(named: poller) != nil else {
                    throw DomainError(
                        .unprocessable,
                        "items[\(index)]: no live poller package named '\(poller)'; create the poller's package first")
                }
                addresses[poller] = .some(try await store.poller(named: poller)?.advertiseAddress)
            }
            let entries = try await identity.authority.batchCreateEntries(
                zip(requests, ids).map { entryRequest($0, $1) })
            let made = entries.compactMap { try? $0.get().id }
            for (index, entry) in entries.enumerated() {
                guard case .failure(let error) = entry else { continue }
                await deleteEntries(made)
                throw Self.itemError(index, error)
            }
            let now = Clock.nowMillis()
            var prepared: [PreparedPackage] = []
            do {
                for (index, request) in requests.enumerated() {
                    prepared.append(
                        try await prepare(
                            request, spiffeID: ids[index], entryID: made[index], by: principal, revealing: false,
                            pollerAddress: request.pollerName.flatMap { addresses[$0] ?? nil }, at: now))
                }
                try await store.createPackages(prepared.map(\.new))
            } catch {
                await deleteEntries(made)
                if let error = error as? StoreError, error.code == .conflict {
                    throw DomainError(
                        .conflict, "a live package took one of these SPIFFE IDs meanwhile; nothing was created")
                }
                throw error
            }
            created(prepared, by: principal)
            return prepared.map(\.view)
        }
    }

    /// The SPIFFE ID a request's package names, from Core's record of the trust domain and the request's names.
    func spiffeID(for request: PackageRequest) throws -> SPIFFEID {
        let trustDomain = identity.trustDomain
        do {
            switch request.componentType {
            case .poller:
                guard request.pollerName == nil else {
                    throw DomainError(
                        .invalid, "poller_id is for agent and checker packages; a poller package names itself")
                }
                return try MusterIDs.poller(trustDomain: trustDomain, name: request.name)
            case .agent, .checker:
                guard let poller = request.pollerName else {
                    throw DomainError(.invalid, "poller_id is required for \(request.componentType.rawValue) packages")
                }
                try MusterIDs.checkName(poller)
                return request.componentType == .agent
                    ? try MusterIDs.agent(trustDomain: trustDomain, poller: poller, name: request.name)
                    : try MusterIDs.checker(trustDomain: trustDomain, poller: poller, name: request.name)
            }
        } catch let error as MusterIDs.NameError {
            throw DomainError(.invalid, error.description)
        }
    }

    func entryRequest(_ request: PackageRequest, _ spiffeID: SPIFFEID) -> EntryRequest {
        EntryRequest(
            spiffeID: spiffeID, selectors: request.selectors, downstream: request.componentType == .poller,
            x509SVIDTTL: leafTTL)
    }

    func prepare(
        _ request: PackageRequest, spiffeID: SPIFFEID, entryID: String, by principal: Principal, revealing: Bool,
        pollerAddress: String?, at now: Int64
    ) async throws -> PreparedPackage {
        let id = UUID().uuidString.lowercased()
        let (token, _) = try await identity.authority.createJoinToken(ttl: TimeInterval(request.ttlSeconds))
        let record = PackageRecord(
            id: id, name: request.name, componentType: request.componentType, site: request.site,
            pollerName: request.pollerName, spiffeID: spiffeID.description, activeSpiffeID: spiffeID.description,
            selectors: JSONText.array(request.selectors), tokenHash: Self.hex(token.hash),
            tokenCiphertext: try sealer.seal(token, packageID: id), entryID: entryID,
            ttlSeconds: request.ttlSeconds, expiresAt: now + request.ttlSeconds * 1000, status: .created,
            createdBy: principal.name, createdAt: now, notes: request.notes, metadata: JSONText.object(request.metadata)
        )
        let view = PackageView(record, joinCommand: joinCommand(record, pollerAddress: pollerAddress))
        var details = [
            "name": record.name, "component_type": record.componentType.rawValue, "spiffe_id": record.spiffeID,
        ]
        if revealing && record.componentType != .poller { details["join_command_shown"] = "console" }
        let audit = AuditRecord(
            at: now, actor: principal.name, sourceIP: principal.sourceIP, action: "package.create",
            targetType: "package", targetID: id, details: details)
        return PreparedPackage(
            new: NewPackage(record: record, audit: audit, event: Self.event("package.created", view, at: now)),
            view: view, token: token)
    }

    func created(_ packages: [PreparedPackage], by principal: Principal) {
        events.ring()
        for made in packages {
            metrics.packageTransition("created", type: made.record.componentType)
            logger.info(
                "package created",
                metadata: [
                    "package": "\(made.record.id)", "spiffe_id": "\(made.record.spiffeID)",
                    "actor": "\(principal.name)",
                ])
        }
    }

    /// Runs one item's step of a bulk create; its failure names the item.
    static func item<R>(_ index: Int, _ body: () throws -> R) throws -> R {
        do { return try body() } catch { throw itemError(index, error) }
    }

    static func itemError(_ index: Int, _ error: any Error) -> DomainError {
        let failure = DomainError(error)
        return DomainError(failure.code, "items[\(index)]: \(failure.message)", cause: error)
    }
}
