import Crypto
import Foundation
import MusterIdentity
import Testing
import X509

@Suite("embedded identity authority")
struct EmbeddedAuthorityTests {
    static func authority() throws -> EmbeddedAuthority {
        try EmbeddedAuthority(
            directory: FileManager.default.temporaryDirectory.appending(path: "authority-\(UUID())").path,
            trustDomain: "example.org")
    }

    @Test("a poller's entry, SVID and downstream CA; agents under that CA verify; Core's SVID comes from the same seam")
    func pollerLifecycle() async throws {
        let authority = try Self.authority()
        let pollerID = try MusterIDs.poller(trustDomain: "example.org", name: "edge-1")
        let agentID = try MusterIDs.agent(trustDomain: "example.org", poller: "edge-1", name: "a1")
        let entries = try await authority.batchCreateEntries([
            EntryRequest(spiffeID: pollerID, selectors: ["site:berlin"], downstream: true),
            EntryRequest(spiffeID: agentID),
        ])
        let pollerEntry = try entries[0].get()
        let agentEntry = try entries[1].get()
        #expect(pollerEntry.downstream && !agentEntry.downstream && pollerEntry.id != agentEntry.id)

        let svid = try await authority.mintX509SVID(
            SVIDRequest(
                spiffeID: pollerID, csrDER: try CSRTests.csr(), dnsNames: ["edge-1.example.org"],
                ipAddresses: ["10.1.2.3"], ttl: 3600))
        let bundle = try await authority.bundle()
        let verifier = SVIDVerifier(trustDomain: "example.org", roots: bundle.roots)
        #expect(try await verifier.verify(chain: svid.chain).id == pollerID)
        #expect(svid.certificate.notValidAfter.timeIntervalSince(svid.certificate.notValidBefore) <= 3600 + 10 + 1)

        let caKey = P256.Signing.PrivateKey()
        let downstream = try await authority.newDownstreamX509CA(
            SVIDRequest(spiffeID: pollerID, csrDER: try CSRTests.csr(key: caKey), ttl: 86_400))
        let pollerCA = CertificateAuthority(
            certificate: downstream.certificate, privateKey: .init(caKey),
            chainToRoot: Array(downstream.chain.dropFirst()))
        let agent = try pollerCA.issueLeaf(spiffeID: agentID, publicKey: .init(P256.Signing.PrivateKey().publicKey))
        let verified = try await verifier.verify(chain: [agent, downstream.certificate])
        #expect(verified.id == agentID && !verified.isRootIssued)

        let core = try await authority.mintX509SVID(
            SVIDRequest(spiffeID: try MusterIDs.core(trustDomain: "example.org"), csrDER: try CSRTests.csr(), ttl: 600))
        #expect(try await verifier.verify(chain: core.chain).musterID == .core)

        let deleted = try await authority.batchDeleteEntries(ids: [pollerEntry.id, ""])
        #expect(try deleted[0].get() == pollerEntry.id)
        #expect(throws: IdentityError(.entryNotFound, "")) { try deleted[1].get() }
    }

    @Test(
        "bad requests are refused with codes: foreign trust domain, agent SVIDs or CAs from the root, bad CSR, lifetimes, token TTL"
    )
    func refusals() async throws {
        let authority = try Self.authority()
        let foreign = try SPIFFEID(parsing: "spiffe://evil.org/muster/poller/x")
        let poller = try MusterIDs.poller(trustDomain: "example.org", name: "p")
        let agent = try MusterIDs.agent(trustDomain: "example.org", poller: "p", name: "a")
        let results = try await authority.batchCreateEntries([
            EntryRequest(spiffeID: foreign, downstream: true), EntryRequest(spiffeID: agent, downstream: true),
            EntryRequest(spiffeID: poller),
        ])
        #expect(throws: IdentityError(.wrongTrustDomain, "")) { try results[0].get() }
        #expect(throws: IdentityError(.outsidePollerScope, "")) { try results[1].get() }
        #expect(try results[2].get().spiffeID == poller)

        await #expect(throws: IdentityError(.outsidePollerScope, "")) {
            _ = try await authority.mintX509SVID(SVIDRequest(spiffeID: agent, csrDER: try CSRTests.csr(), ttl: 600))
        }
        await #expect(throws: IdentityError(.outsidePollerScope, "")) {
            _ = try await authority.newDownstreamX509CA(
                SVIDRequest(spiffeID: agent, csrDER: try CSRTests.csr(), ttl: 600))
        }
        await #expect(throws: IdentityError(.wrongTrustDomain, "")) {
            _ = try await authority.mintX509SVID(SVIDRequest(spiffeID: foreign, csrDER: try CSRTests.csr(), ttl: 600))
        }
        await #expect(throws: IdentityError(.csrMalformed, "")) {
            _ = try await authority.newDownstreamX509CA(SVIDRequest(spiffeID: poller, csrDER: [0x30, 0x00], ttl: 600))
        }
        await #expect(throws: IdentityError(.badLifetime, "")) {
            _ = try await authority.mintX509SVID(SVIDRequest(spiffeID: poller, csrDER: try CSRTests.csr(), ttl: 0))
        }
        await #expect(throws: IdentityError(.badLifetime, "")) { _ = try await authority.createJoinToken(ttl: 90_000) }
        let (token, expiresAt) = try await authority.createJoinToken(ttl: JoinToken.defaultTTL)
        #expect(token.secret.hasPrefix("mjt_"))
        #expect(abs(expiresAt.timeIntervalSinceNow - 900) < 5)
        #expect(throws: MusterIDs.NameError.self) { try MusterIDs.poller(trustDomain: "example.org", name: "Bad Name") }
        #expect(throws: MusterIDs.NameError.self) {
            try MusterIDs.agent(trustDomain: "example.org", poller: "p", name: "..")
        }
        #expect(throws: MusterIDs.NameError.self) {
            try MusterIDs.agent(trustDomain: "example.org", poller: "p", name: String(repeating: "a", count: 64))
        }
    }
}
