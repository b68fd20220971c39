import Crypto
import Foundation
import MusterEdge
import MusterIdentity
import MusterStore
import Testing

@testable import MusterCore

/// The enrollment lifecycle on SQLite and PostgreSQL alike: relayed once, approved into a tokenless package,
/// activated by the package's activation, refused when not pending, expired by the reaper.
@Suite("Enrollment store operations")
struct EnrollmentStoreTests {
    static func relayed(_ machine: String, key: P256.Signing.PrivateKey = .init()) throws -> RelayedEnrollment {
        RelayedEnrollment(
            id: UUID().uuidString.lowercased(), componentType: "agent", requestedName: "",
            facts: EnrollmentFacts(
                machineID: machine, hostname: "Box-\(machine.prefix(4)).lab", fqdn: "", addresses: ["192.0.2.50"],
                os: "debian 12", kernel: "6.1.0", arch: "x86_64"),
            csr: try CSRBuilder.make(key: key, label: "test"), sourceAddress: "192.0.2.50",
            receivedAt: Clock.nowMillis())
    }

    @Test("relay, approve, activate; decisions only on pending requests", arguments: Backend.available)
    func lifecycle(backend: Backend) async throws {
        let h = try Harness(store: try await backend.makeStore())
        try await h.poller()
        let key = P256.Signing.PrivateKey()
        let request = try Self.relayed("0a0b0c0d", key: key)
        #expect(
            try await h.packages.relayEnrollments([request, request], poller: "edge-1", from: "192.0.2.1") == [
                request.id, request.id,
            ])
        var bad = try Self.relayed("0a0b0c0e")
        bad.csr = [0x30, 0x00]
        #expect(try await h.packages.relayEnrollments([bad], poller: "edge-1", from: "192.0.2.1").isEmpty)
        #expect(try await h.store.listEnrollments(EnrollmentFilter()).items.count == 1)

        let view = try await h.packages.enrollment(id: request.id)
        #expect(view.keyFingerprint == KeyFingerprint.of(.init(key.publicKey)))
        #expect(view.suggestedName == "box-0a0b" && view.status == "pending")
        #expect(view.warnings.isEmpty)  // the claimed address is the observed one

        let approved = try await h.packages.approveEnrollment(
            id: request.id, EnrollmentApproval(site: "lab"), by: h.admin)
        #expect(
            approved.status == "approved"
                && approved.spiffeID == "spiffe://test.example/muster/poller/edge-1/agent/box-0a0b")
        let packageID = try #require(approved.packageID)
        let package = try #require(try await h.store.package(id: packageID))
        #expect(package.deliveredVia == "enrollment" && package.status == .delivered && package.tokenCiphertext == nil)
        await #expect(throws: DomainError(.conflict, "")) {
            try await h.packages.approveEnrollment(id: request.id, EnrollmentApproval(), by: h.admin)
        }
        await #expect(throws: DomainError(.conflict, "")) {
            try await h.packages.denyEnrollment(id: request.id, reason: "no", by: h.admin)
        }
        let accepted = try await h.packages.reportActivations(
            [
                ReportedActivation(
                    packageID: package.id, spiffeID: package.spiffeID, sourceAddress: "192.0.2.50",
                    activatedAt: Clock.nowMillis(), serial: "01")
            ], poller: "edge-1", from: "192.0.2.1")
        #expect(accepted == [package.id])
        #expect(try await h.packages.enrollment(id: request.id).status == "activated")
        let actions = try await h.store.auditLog(AuditFilter(targetID: request.id, limit: 20)).items.map(\.action)
        #expect(Set(actions) == ["enrollment.request", "enrollment.approve", "enrollment.activate"])
        let events = try await h.store.events(after: 0, limit: 100).map(\.type)
        #expect(events.contains("enrollment.requested") && events.contains("enrollment.approved"))
        #expect(events.contains("enrollment.activated"))
        await h.store.shutdown()
    }

    @Test(
        "the reaper expires undecided requests after 24 h; an expired one cannot be approved",
        arguments: Backend.available)
    func expiry(backend: Backend) async throws {
        let h = try Harness(store: try await backend.makeStore())
        try await h.poller()
        let request = try Self.relayed("1a1b1c1d")
        _ = try await h.packages.relayEnrollments([request], poller: "edge-1", from: "192.0.2.1")
        let reaper = Reaper(packages: h.packages, interval: 60, logger: Backend.logger)
        #expect(try await reaper.sweep() == 0)
        let later = Clock.nowMillis() + PackageService.enrollmentLifetimeMillis + 1000
        // The request, and the poller's own (never attested) package past its 15 min TTL.
        #expect(try await reaper.sweep(at: later) == 2)
        #expect(try await h.packages.enrollment(id: request.id).status == "expired")
        await #expect(throws: DomainError(.conflict, "")) {
            try await h.packages.approveEnrollment(id: request.id, EnrollmentApproval(), by: h.admin)
        }
        #expect(try await h.store.events(after: 0, limit: 100).map(\.type).contains("enrollment.expired"))
        await h.store.shutdown()
    }

    @Test("lists page by cursor without gaps or repeats and filter by status and poller", arguments: Backend.available)
    func paging(backend: Backend) async throws {
        let h = try Harness(store: try await backend.makeStore())
        try await h.poller()
        var ids: [String] = []
        for index in 0..<5 {
            let request = try Self.relayed("2a2b2c2\(index)")
            _ = try await h.packages.relayEnrollments([request], poller: "edge-1", from: "192.0.2.1")
            ids.append(request.id)
        }
        _ = try await h.packages.denyEnrollment(id: ids[0], reason: "no", by: h.admin)
        var seen: [String] = []
        var cursor: PageCursor?
        repeat {
            let page = try await h.packages.enrollments(EnrollmentFilter(limit: 2, cursor: cursor))
            seen += page.items.map(\.id)
            cursor = try page.nextCursor.map(PageCursor.init(token:))
        } while cursor != nil
        #expect(Set(seen) == Set(ids) && seen.count == ids.count)
        #expect(try await h.packages.enrollments(EnrollmentFilter(status: .pending)).items.count == 4)
        #expect(try await h.packages.enrollments(EnrollmentFilter(status: .denied)).items.map(\.id) == [ids[0]])
        #expect(try await h.packages.enrollments(EnrollmentFilter(decidedOnly: true)).items.map(\.id) == [ids[0]])
        #expect(try await h.packages.enrollments(EnrollmentFilter(pollerName: "edge-2")).items.isEmpty)
        #expect(try await h.packages.pendingEnrollmentCount() == 4)
        await h.store.shutdown()
    }

    @Test(
        "a name another live package holds is a conflict, and the request stays pending", arguments: Backend.available)
    func nameHeld(backend: Backend) async throws {
        let h = try Harness(store: try await backend.makeStore())
        try await h.poller()
        let holder = try await h.agent("box-3a3b")
        let request = try Self.relayed("3a3b3c3d")
        _ = try await h.packages.relayEnrollments([request], poller: "edge-1", from: "192.0.2.1")
        await #expect(throws: DomainError(.conflict, "")) {
            try await h.packages.approveEnrollment(id: request.id, EnrollmentApproval(), by: h.admin)
        }
        // The store refuses it too when the domain's check is raced: the unique identity, in one transaction.
        let record = try #require(try await h.store.enrollment(id: request.id))
        var package = try #require(try await h.store.package(id: holder.id))
        package.id = UUID().uuidString.lowercased()
        package.tokenHash = String(repeating: "ab", count: 32)
        let audit = AuditRecord(at: 1, actor: "t", sourceIP: nil, action: "x", targetType: "enrollment", targetID: nil)
        await #expect(throws: StoreError(.conflict, "")) {
            try await h.store.approveEnrollment(
                id: record.id, package: package, at: Clock.nowMillis(), by: "t", reason: nil, revoking: [],
                audit: audit, event: { _ in EventRecord(id: nil, at: 1, type: "t", subject: "s", payload: "{}") },
                packageAudit: audit, packageEvent: EventRecord(id: nil, at: 1, type: "t", subject: "s", payload: "{}"),
                revocationAudit: audit,
                revocationEvent: { _ in EventRecord(id: nil, at: 1, type: "t", subject: "s", payload: "{}") })
        }
        #expect(try await h.packages.enrollment(id: request.id).status == "pending")
        #expect(try await h.store.package(id: package.id) == nil)
        let approved = try await h.packages.approveEnrollment(
            id: request.id, EnrollmentApproval(name: "box-other"), by: h.admin)
        #expect(approved.status == "approved")
        await h.store.shutdown()
    }
}
