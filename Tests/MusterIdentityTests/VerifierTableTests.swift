import Crypto
import Foundation
import MusterIdentity
import Testing
import X509

/// One row per X.509-SVID and Muster rule: the chain a peer presents and the verdict expected.
@Suite("SVID verification table")
struct VerifierTableTests {
    struct Row: CustomTestStringConvertible, Sendable {
        let name: String
        let expected: IdentityError.Code?
        let build: @Sendable (TestAuthority) throws -> [Certificate]
        var testDescription: String { name }
    }

    static let td = "spiffe://example.org"

    static let rows: [Row] = [
        Row(name: "leaf from the root is accepted", expected: nil) { a in [try a.leaf("\(td)/muster/poller/p1")] },
        Row(name: "agent leaf from its poller's CA is accepted", expected: nil) { a in
            let ca = try a.downstream(poller: "p1")
            return [try a.leaf("\(td)/muster/poller/p1/agent/a1", from: ca), ca.certificate]
        },
        Row(name: "no URI SAN", expected: .notAnSVID) { a in [try CertBuilder(uris: []).sign(by: a.root)] },
        Row(name: "two URI SANs", expected: .notAnSVID) { a in
            [try CertBuilder(uris: ["\(td)/a", "\(td)/b"]).sign(by: a.root)]
        },
        Row(name: "root path on a leaf", expected: .notAnSVID) { a in [try CertBuilder(uris: [td]).sign(by: a.root)] },
        Row(name: "cA=true leaf", expected: .notAnSVID) { a in
            [try CertBuilder(uris: ["\(td)/x"], isCA: true).sign(by: a.root)]
        },
        Row(name: "missing key usage", expected: .notAnSVID) { a in
            [try CertBuilder(uris: ["\(td)/x"], keyUsage: nil).sign(by: a.root)]
        },
        Row(name: "non-critical key usage", expected: .notAnSVID) { a in
            [try CertBuilder(uris: ["\(td)/x"], keyUsageCritical: false).sign(by: a.root)]
        },
        Row(name: "keyCertSign on a leaf", expected: .notAnSVID) { a in
            [
                try CertBuilder(uris: ["\(td)/x"], keyUsage: KeyUsage(digitalSignature: true, keyCertSign: true)).sign(
                    by: a.root)
            ]
        },
        Row(name: "no digitalSignature on a leaf", expected: .notAnSVID) { a in
            [try CertBuilder(uris: ["\(td)/x"], keyUsage: KeyUsage(keyEncipherment: true)).sign(by: a.root)]
        },
        Row(name: "illegal characters in the ID", expected: .notAnSVID) { a in
            [try CertBuilder(uris: ["\(td)/bad%20path"]).sign(by: a.root)]
        },
        Row(name: "an ID over 2048 bytes", expected: .notAnSVID) { a in
            [try CertBuilder(uris: ["\(td)/" + String(repeating: "a", count: 2100)]).sign(by: a.root)]
        },
        Row(name: "wrong trust domain", expected: .wrongTrustDomain) { a in
            [try CertBuilder(uris: ["spiffe://evil.org/x"]).sign(by: a.root)]
        },
        Row(name: "expired", expected: .chainInvalid) { a in
            [try CertBuilder(uris: ["\(td)/x"], notBefore: Date() - 7200, notAfter: Date() - 3600).sign(by: a.root)]
        },
        Row(name: "not yet valid", expected: .chainInvalid) { a in
            [try CertBuilder(uris: ["\(td)/x"], notBefore: Date() + 3600, notAfter: Date() + 7200).sign(by: a.root)]
        },
        Row(name: "signed by another root", expected: .chainInvalid) { _ in
            let stranger = try TestAuthority()
            return [try stranger.leaf("\(td)/x")]
        },
        Row(name: "poller A's CA signing for poller B's path", expected: .outsidePollerScope) { a in
            let ca = try a.downstream(poller: "pa")
            return [try a.leaf("\(td)/muster/poller/pb/agent/a1", from: ca), ca.certificate]
        },
        Row(name: "poller CA signing its own ID", expected: .outsidePollerScope) { a in
            let ca = try a.downstream(poller: "pa")
            return [try a.leaf("\(td)/muster/poller/pa", from: ca), ca.certificate]
        },
        Row(name: "poller CA signing for a sibling prefix (pa vs pab)", expected: .outsidePollerScope) { a in
            let ca = try a.downstream(poller: "pa")
            return [try a.leaf("\(td)/muster/poller/pab/agent/x", from: ca), ca.certificate]
        },
        Row(name: "a CA under a pathLen=0 CA", expected: .chainInvalid) { a in
            let poller = try a.downstream(poller: "p1")
            let sub = try CertBuilder(
                uris: ["\(td)/muster/poller/p1/sub"], isCA: true, keyUsage: KeyUsage(keyCertSign: true)
            ).signAsAuthority(by: poller)
            return [try a.leaf("\(td)/muster/poller/p1/sub/agent/a", from: sub), sub.certificate, poller.certificate]
        },
        Row(name: "downstream CA's name constraint excludes another trust domain", expected: .wrongTrustDomain) { a in
            let ca = try a.downstream(poller: "p1")
            return [
                try CertBuilder(uris: ["spiffe://other.org/muster/poller/p1/agent/a"]).sign(by: ca), ca.certificate,
            ]
        },
    ]

    @Test("verdict", arguments: rows)
    func verdict(_ row: Row) async throws {
        let authority = try TestAuthority()
        let chain = try row.build(authority)
        do {
            let id = try await authority.verifier.verify(chain: chain)
            #expect(row.expected == nil, "accepted \(id), expected \(String(describing: row.expected))")
        } catch {
            #expect(error.code == row.expected, "\(error.message)")
        }
    }

    @Test("RFC 5280 name constraints are checked: a downstream CA cannot vouch for another trust domain")
    func nameConstraintsInPathValidation() async throws {
        // Verified with the foreign trust domain configured, so only path validation can refuse it.
        let authority = try TestAuthority()
        let ca = try authority.downstream(poller: "p1")
        let leaf = try CertBuilder(uris: ["spiffe://other.org/muster/poller/p1/agent/a"]).sign(by: ca)
        let verifier = SVIDVerifier(trustDomain: "other.org", roots: [authority.root.certificate])
        await #expect(throws: IdentityError(.chainInvalid, "")) {
            try await verifier.verify(chain: [leaf, ca.certificate])
        }
    }
}
