import Crypto
import Foundation
import MusterIdentity
import Testing
import X509

/// What the verifier hands to policies: the path that validated (never what was sent), pin-anchored validation,
/// the host-name rule under poller CAs, parsed Muster IDs and RFC 5280-sized serials.
@Suite("verified paths, pins and IDs")
struct VerifiedPathTests {
    static let td = "spiffe://example.org"

    @Test("the validated path names the CA that really signed the leaf, whatever else was sent")
    func decoyCAIsNotInThePath() async throws {
        let a = try TestAuthority()
        let p1 = try a.downstream(poller: "p1")
        let p2 = try a.downstream(poller: "p2")
        let leaf = try a.leaf("\(Self.td)/muster/poller/p2/agent/a1", from: p2)
        let verified = try await a.verifier.verify(chain: [leaf, p1.certificate, p2.certificate])
        #expect(verified.issuer == p2.certificate)
        #expect(verified.path == [leaf, p2.certificate, a.root.certificate])
        #expect(verified.musterID == .agent(poller: "p2", name: "a1"))
        #expect(!verified.isRootIssued)
        // The same ID signed by p2 but claiming p1's scope is refused by the path rule, decoy or not.
        let forged = try a.leaf("\(Self.td)/muster/poller/p1/agent/a1", from: p2)
        await #expect(throws: IdentityError(.outsidePollerScope, "")) {
            try await a.verifier.verify(chain: [forged, p1.certificate, p2.certificate])
        }
    }

    @Test("pin mode validates the whole path to the pinned root, and only to it")
    func pinned() async throws {
        let a = try TestAuthority()
        let pin = CAPin.of(a.root.certificate)
        let server = try a.leaf("\(Self.td)/muster/core")
        let verified = try await SVIDVerifier.verifyPinned(
            chain: [server, a.root.certificate], pin: pin, trustDomain: "example.org")
        #expect(verified.id.description == "\(Self.td)/muster/core" && verified.isRootIssued)
        // A poller's CA may not vouch for Core even when the pinned root signed that CA.
        let p2 = try a.downstream(poller: "p2")
        let fake = try a.leaf("\(Self.td)/muster/core", from: p2)
        await #expect(throws: IdentityError(.outsidePollerScope, "")) {
            try await SVIDVerifier.verifyPinned(
                chain: [fake, p2.certificate, a.root.certificate], pin: pin, trustDomain: "example.org")
        }
        // A self-signed certificate with the pinned key's place taken by another root: no path.
        let stranger = try TestAuthority()
        let alien = try stranger.leaf("\(Self.td)/muster/core")
        await #expect(throws: IdentityError(.chainInvalid, "")) {
            try await SVIDVerifier.verifyPinned(
                chain: [alien, stranger.root.certificate], pin: pin, trustDomain: "example.org")
        }
        // The pinned key may not be the leaf itself.
        await #expect(throws: IdentityError(.chainInvalid, "")) {
            try await SVIDVerifier.verifyPinned(chain: [server], pin: CAPin.of(server), trustDomain: "example.org")
        }
    }

    @Test("a poller's CA excludes DNS and IP names: its leaves may not name hosts")
    func noHostNamesUnderPollerCAs() async throws {
        let a = try TestAuthority()
        let p1 = try a.downstream(poller: "p1")
        let key = P256.Signing.PrivateKey()
        let named = try p1.issueLeaf(
            spiffeID: try SPIFFEID(parsing: "\(Self.td)/muster/poller/p1/agent/a1"), publicKey: .init(key.publicKey),
            dnsNames: ["core.example.org"])
        await #expect(throws: IdentityError.self) { try await a.verifier.verify(chain: [named, p1.certificate]) }
        let constraints = try #require(try p1.certificate.extensions.nameConstraints)
        #expect(constraints.excludedDNSDomains.contains(""))
        #expect(constraints.excludedIPRanges.count == 2)
        // The root still issues serving SVIDs with host names (Core, pollers).
        let serving = try a.root.issueLeaf(
            spiffeID: try SPIFFEID(parsing: "\(Self.td)/muster/core"), publicKey: .init(key.publicKey),
            dnsNames: ["core.example.org"])
        #expect(try await a.verifier.verify(chain: [serving]).isRootIssued)
    }

    @Test(
        "Muster IDs parse into what they name; anything else is nil",
        arguments: [
            ("/muster/core", MusterID.core), ("/muster/poller/p1", .poller("p1")),
            ("/muster/poller/p1/agent/a", .agent(poller: "p1", name: "a")),
            ("/muster/poller/p1/checker/c", .checker(poller: "p1", name: "c")),
        ])
    func parse(_ path: String, _ expected: MusterID) throws {
        #expect(MusterID(try SPIFFEID(parsing: Self.td + path)) == expected)
    }

    @Test(
        "paths outside the scheme are not Muster IDs",
        arguments: [
            "/muster", "/muster/core/x", "/muster/poller", "/muster/poller/P1", "/muster/poller/p1/robot/a",
            "/muster/poller/p1/agent",
            "/other/poller/p1", "/muster/poller/p1/agent/a/b",
        ])
    func notMuster(_ path: String) throws {
        #expect(MusterID(try SPIFFEID(parsing: Self.td + path)) == nil)
    }

    @Test("serials are 20 octets, positive, and print zero-padded")
    func serials() throws {
        for _ in 0..<200 {
            let serial = MusterIdentity.SerialNumber.random()
            #expect(serial.bytes.count == 20 && serial.bytes.first! < 0x80 && serial.bytes.first! > 0)
        }
        #expect(
            MusterIdentity.SerialNumber.text(Certificate.SerialNumber(bytes: [0x0d, 0x67, 0xb9, 0x05])) == "0d:67:b9:05"
        )
    }
}
