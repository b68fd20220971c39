import Foundation
import MusterIdentity
import MusterStore
import X509

/// One agent or checker activation as its poller saw it.
public struct ReportedActivation: Sendable {
    public var packageID: String
    public var spiffeID: String
    public var sourceAddress: String
    public var activatedAt: Int64
    public var serial: String

    public init(packageID: String, spiffeID: String, sourceAddress: String, activatedAt: Int64, serial: String) {
        self.packageID = packageID
        self.spiffeID = spiffeID
        self.sourceAddress = sourceAddress
        self.activatedAt = activatedAt
        self.serial = serial
    }
}

/// A join a poller refused, as it reports it for the audit log.
public struct ReportedRefusal: Sendable {
    public var packageID: String
    public var reason: String
    public var sourceAddress: String
    public var at: Int64

    public init(packageID: String, reason: String, sourceAddress: String, at: Int64) {
        self.packageID = packageID
        self.reason = reason
        self.sourceAddress = sourceAddress
        self.at = at
    }
}

extension PackageService {
    /// Writes the joins a poller refused into the audit log (outcome `denied`, the agent's address as the poller
    /// saw it, the real reason). A package id that is not this poller's is not attached to the row.
    public func auditRefusals(_ refusals: [ReportedRefusal], poller: String) async throws {
        try await DomainError.mapping { try await audit(refusals, poller: poller) }
    }

    private func audit(_ refusals: [ReportedRefusal], poller: String) async throws {
        let now = Clock.nowMillis()
        for refusal in refusals {
            var target: String?
            if !refusal.packageID.isEmpty, let record = try await store.package(id: refusal.packageID),
                record.pollerName == poller
            {
                target = record.id
            }
            metrics.refusedRedemptions.increment()
            // Budgeted per poller: a compromised poller cannot flood the audit log through its reports.
            await auditor.record(
                AuditRecord(
                    at: now, actor: "poller:\(poller)", sourceIP: TextRules.printable(refusal.sourceAddress, limit: 64),
                    action: "package.activate",
                    targetType: "package", targetID: target, outcome: "denied",
                    reason: TextRules.printable(refusal.reason, limit: 200),
                    details: ["via": "poller", "refused_at": Timestamp.text(min(max(refusal.at, 0), now))]
                ), source: "poller:\(poller)")
        }
    }

    /// Most activations (and refusals) one report may carry.
    public static let maxActivationsPerReport = 500

    /// Records activations a poller reports. Idempotent: a package already Activated with the same identity is
    /// accepted again without a second audit row or event; a package revoked or expired before the report
    /// arrived is accepted (the poller may forget it) and audited as late. Ids left out of the answer are
    /// refused for good — unknown, another poller's, or another identity — and audited as denied.
    public func reportActivations(_ activations: [ReportedActivation], poller: String, from ip: String) async throws
        -> [String]
    {
        try await DomainError.mapping {
            let now = Clock.nowMillis()
            var accepted = try await activateTogether(activations, poller: poller, from: ip, now: now)
            for (index, activation) in activations.enumerated() where !accepted.contains(index) {
                if try await record(activation, poller: poller, from: ip, now: now) {
                    accepted.insert(index)
                }
            }
            return activations.indices.filter { accepted.contains($0) }.map { activations[$0].packageID }
        }
    }

    /// The common case of a report in one read and one transaction: packages of this poller, with the reported
    /// ID, still Created or Delivered (each package once). Returns the positions in `activations` it activated;
    /// the rest (and any that moved meanwhile) go through `record` one by one.
    private func activateTogether(_ activations: [ReportedActivation], poller: String, from ip: String, now: Int64)
        async throws -> Set<Int>
    {
        let records = try await store.packages(ids: activations.map(\.packageID))
        let actor = "poller:\(poller)"
        var moves: [ReportedMove] = []
        var positions: [String: Int] = [:]
        for (index, activation) in activations.enumerated() {
            guard let record = records[activation.packageID], positions[record.id] == nil,
                record.componentType != .poller, record.pollerName == poller, record.spiffeID == activation.spiffeID,
                record.status == .created || record.status == .delivered
            else { continue }
            let source = String(activation.sourceAddress.prefix(64))
            positions[record.id] = index
            moves.append(
                ReportedMove(
                    id: record.id, spiffeID: record.spiffeID,
                    activatedAt: min(max(activation.activatedAt, record.createdAt), now), source: source,
                    audit: AuditRecord(
                        at: now, actor: actor, sourceIP: ip, action: "package.activate", targetType: "package",
                        targetID: record.id,
                        details: ["serial": activation.serial, "activated_from_ip": source, "via": "poller"])))
        }
        guard !moves.isEmpty else { return [] }
        let moved = try await DomainError.mapping {
            try await store.activateReportedTogether(moves) { updated in
                Self.event("package.activated", PackageView(updated, joinCommand: nil), at: now)
            }
        }
        if !moved.isEmpty { events.ring(types: ["package.activated"]) }
        for record in moved {
            metrics.packageTransition(record.status.rawValue, type: record.componentType)
            try await activated(record, actor: actor)
        }
        return Set(moved.compactMap { positions[$0.id] })
    }

    private func record(_ activation: ReportedActivation, poller: String, from ip: String, now: Int64) async throws
        -> Bool
    {
        let actor = "poller:\(poller)"
        func deny(_ reason: String) async throws -> Bool {
            try await store.audit(
                AuditRecord(
                    at: now, actor: actor, sourceIP: ip, action: "package.activate", targetType: "package",
                    targetID: activation.packageID, outcome: "denied", reason: reason))
            logger.warning(
                "activation report refused",
                metadata: ["package": "\(activation.packageID)", "poller": "\(poller)", "reason": "\(reason)"])
            return false
        }
        guard let record = try await store.package(id: activation.packageID) else {
            return try await deny("no such package")
        }
        guard record.componentType != .poller, record.pollerName == poller else {
            return try await deny("the package is not assigned to this poller")
        }
        guard record.spiffeID == activation.spiffeID else {
            return try await deny("the reported SPIFFE ID is not the package's")
        }
        let at = min(max(activation.activatedAt, record.createdAt), now)
        let source = String(activation.sourceAddress.prefix(64))
        switch record.status {
        case .activated:
            return true
        case .expired where activation.activatedAt < record.expiresAt:
            // Redeemed at the poller in time, reported after Core's reaper expired it (Core was away): the
            // expiry was wrong, so the package takes the activation it really had.
            do {
                try await activate(
                    record, activation, at: at, source: source, actor: actor, ip: ip, now: now, correctingExpiry: true)
            } catch let error as DomainError where error.code == .conflict {
                // A newer live package holds the identity now: keep the expiry, record the late activation.
                return try await late(record, activation, actor: actor, ip: ip, source: source, now: now)
            }
            return true
        case .revoked, .expired:
            return try await late(record, activation, actor: actor, ip: ip, source: source, now: now)
        case .created, .delivered:
            do {
                try await activate(
                    record, activation, at: at, source: source, actor: actor, ip: ip, now: now, correctingExpiry: false)
            } catch let error as DomainError where error.code == .conflict {
                // Moved meanwhile (a concurrent report, a revocation): read it again and answer from that.
                return try await self.record(activation, poller: poller, from: ip, now: now)
            }
            return true
        }
    }

    /// Moves the package to Activated with what the poller saw: one transaction, one audit row, one event.
    private func activate(
        _ record: PackageRecord, _ activation: ReportedActivation, at: Int64, source: String, actor: String, ip: String,
        now: Int64, correctingExpiry: Bool
    ) async throws {
        var details = ["serial": activation.serial, "activated_from_ip": source, "via": "poller"]
        if correctingExpiry { details["corrects"] = "expiry" }
        let audit = AuditRecord(
            at: now, actor: actor, sourceIP: ip, action: "package.activate", targetType: "package", targetID: record.id,
            details: details)
        let updated = try await transition("package.activated", at: now) { event in
            try await store.activateReported(
                id: record.id, spiffeID: record.spiffeID, activatedAt: at, from: source,
                correctingExpiry: correctingExpiry, audit: audit, event: event)
        }
        try await activated(updated, actor: actor)
    }

    /// What follows an activation's commit: the count, the enrollment it completes (if any), the log line.
    private func activated(_ record: PackageRecord, actor: String) async throws {
        metrics.redemptions.increment()
        if record.deliveredVia == Self.enrollmentDelivery {
            try await markEnrollmentActivated(
                packageID: record.id, at: record.activatedAt ?? Clock.nowMillis(), poller: record.pollerName ?? "")
        }
        logger.notice(
            "agent activated via poller",
            metadata: ["package": "\(record.id)", "spiffe_id": "\(record.spiffeID)", "actor": "\(actor)"])
    }

    /// A report for a package revoked (or rightly expired) before it arrived: accepted so the poller forgets
    /// it, audited with outcome `late`, nothing else changed.
    private func late(
        _ record: PackageRecord, _ activation: ReportedActivation, actor: String, ip: String, source: String, now: Int64
    ) async throws -> Bool {
        try await store.audit(
            AuditRecord(
                at: now, actor: actor, sourceIP: ip, action: "package.activate", targetType: "package",
                targetID: record.id,
                outcome: "late",
                reason: "the poller redeemed the token before it learned the package was \(record.status.rawValue)",
                details: ["serial": activation.serial, "activated_from_ip": source]
            ))
        return true
    }

    /// Renews a poller's SVID (and its downstream CA when a CA CSR comes too) for the identity Core holds;
    /// only the CSRs' public keys are used. Both certificates are recorded for the revocation cascade.
    public func renewPoller(
        _ name: String, svidCSR: [UInt8], caCSR: [UInt8],
        from ip: String
    ) async throws -> (svid: [Certificate], ca: [Certificate]) {
        try await DomainError.mapping { try await renew(name, svidCSR: svidCSR, caCSR: caCSR, from: ip) }
    }

    private func renew(_ name: String, svidCSR: [UInt8], caCSR: [UInt8], from ip: String) async throws -> (
        svid: [Certificate], ca: [Certificate]
    ) {
        do {
            _ = try CSRCheck.publicKey(fromDER: svidCSR, purpose: .leaf)
            if !caCSR.isEmpty { _ = try CSRCheck.publicKey(fromDER: caCSR, purpose: .certificateAuthority) }
        } catch {
            throw DomainError(.invalid, "CSR refused: \(error.message)")
        }
        guard let poller = try await store.poller(named: name), let spiffeID = try? SPIFFEID(parsing: poller.spiffeID)
        else {
            throw DomainError(.permissionDenied, "poller \(name) is not known")
        }
        // Checked again: a record written before the address rule must not put an unchecked name in a new SVID.
        let advertised = poller.advertiseAddress.flatMap { try? checkAdvertised($0) }
        let (dnsNames, ipAddresses) = advertised.map { HostPort.subjectAltNames(host: $0.host) } ?? ([], [])
        let svidChain = try await identity.authority.mintX509SVID(
            SVIDRequest(
                spiffeID: spiffeID, csrDER: svidCSR, dnsNames: dnsNames, ipAddresses: ipAddresses, ttl: leafTTL
            )
        ).chain
        let caChain =
            caCSR.isEmpty
            ? []
            : try await identity.authority.newDownstreamX509CA(
                SVIDRequest(spiffeID: spiffeID, csrDER: caCSR, ttl: pollerCATTL)
            ).chain
        let svid = svidChain[0]
        let ca = caChain.first
        var issued = [
            IssuedCertificate(serial: "\(svid.serialText)", kind: "svid", notAfter: Clock.millis(svid.notValidAfter))
        ]
        if let ca {
            issued.append(
                IssuedCertificate(serial: "\(ca.serialText)", kind: "ca", notAfter: Clock.millis(ca.notValidAfter)))
        }
        let now = Clock.nowMillis()
        var details = ["svid_serial": "\(svid.serialText)"]
        if let ca { details["ca_serial"] = "\(ca.serialText)" }
        try await store.recordIssued(
            issued, spiffeID: poller.spiffeID, packageID: poller.packageID, at: now,
            audit: AuditRecord(
                at: now, actor: "poller:\(name)", sourceIP: ip, action: "poller.renew", targetType: "poller",
                targetID: name, details: details
            ))
        logger.info("poller renewed", metadata: ["poller": "\(name)", "with_ca": "\(ca != nil)"])
        return (svidChain, caChain)
    }
}
