import Crypto
import Foundation
import MusterIdentity
import Testing
import X509

@Suite("embedded identity authority")
struct EmbeddedAuthorityTests {
    @Test("a poller's entry yields its SVID and downstream CA; agents under that CA verify; a deleted entry issues nothing")
    func pollerLifecycle() async throws {
        let directory = FileManager.default.temporaryDirectory.appending(path: "authority-\(UUID())").path
        let authority = try EmbeddedAuthority(directory: directory, trustDomain: "example.org")
        let pollerID = try MusterIDs.poller(trustDomain: "example.org", name: "edge-1")
        let entry = try await authority.createDownstreamEntry(pollerID: pollerID, selectors: ["site:berlin"])
        #expect(entry.downstream)

        let svid = try await authority.issuePollerSVID(
            entryID: entry.id, csrDER: try CSRTests.csr(), dnsNames: ["edge-1.example.org"], ipAddresses: ["10.1.2.3"])
        let bundle = try await authority.bundle()
        let verifier = SVIDVerifier(trustDomain: "example.org", roots: bundle.roots)
        #expect(try await verifier.verify(chain: svid.chain).id == pollerID)
        #expect(svid.certificate.notValidAfter.timeIntervalSince(svid.certificate.notValidBefore) <= 3600 + 10 + 1)

        let caKey = P256.Signing.PrivateKey()
        let downstream = try await authority.issueDownstreamCA(entryID: entry.id, csrDER: try CSRTests.csr(key: caKey))
        let pollerCA = CertificateAuthority(certificate: downstream.certificate, privateKey: .init(caKey), chainToRoot: Array(downstream.chain.dropFirst()))
        let agentID = try MusterIDs.agent(trustDomain: "example.org", poller: "edge-1", name: "a1")
        let agent = try pollerCA.issueLeaf(spiffeID: agentID, publicKey: .init(P256.Signing.PrivateKey().publicKey))
        #expect(try await verifier.verify(chain: [agent, downstream.certificate]).id == agentID)

        try await authority.deleteEntry(id: entry.id)
        await #expect(throws: IdentityError(.entryNotFound, "")) {
            _ = try await authority.issuePollerSVID(entryID: entry.id, csrDER: try CSRTests.csr(), dnsNames: [], ipAddresses: [])
        }
        await #expect(throws: IdentityError(.entryNotFound, "")) { try await authority.deleteEntry(id: entry.id) }
    }

    @Test("bad requests change nothing: foreign trust domain, bad CSR, bad token TTL")
    func refusals() async throws {
        let directory = FileManager.default.temporaryDirectory.appending(path: "authority-\(UUID())").path
        let authority = try EmbeddedAuthority(directory: directory, trustDomain: "example.org")
        await #expect(throws: IdentityError(.wrongTrustDomain, "")) {
            _ = try await authority.createDownstreamEntry(pollerID: try SPIFFEID(parsing: "spiffe://evil.org/muster/poller/x"), selectors: [])
        }
        let entry = try await authority.createDownstreamEntry(pollerID: try MusterIDs.poller(trustDomain: "example.org", name: "p"), selectors: [])
        await #expect(throws: IdentityError(.csrMalformed, "")) {
            _ = try await authority.issueDownstreamCA(entryID: entry.id, csrDER: [0x30, 0x00])
        }
        await #expect(throws: IdentityError(.badLifetime, "")) { _ = try await authority.createJoinToken(ttl: 90_000) }
        let (token, expiresAt) = try await authority.createJoinToken(ttl: JoinToken.defaultTTL)
        #expect(token.secret.hasPrefix("mjt_"))
        #expect(abs(expiresAt.timeIntervalSinceNow - 900) < 5)
        #expect(throws: MusterIDs.NameError.self) { try MusterIDs.poller(trustDomain: "example.org", name: "Bad Name") }
        #expect(throws: MusterIDs.NameError.self) { try MusterIDs.agent(trustDomain: "example.org", poller: "p", name: "..") }
        #expect(throws: MusterIDs.NameError.self) { try MusterIDs.agent(trustDomain: "example.org", poller: "p", name: String(repeating: "a", count: 64)) }
    }
}
