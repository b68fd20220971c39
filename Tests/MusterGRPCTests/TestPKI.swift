import Crypto
import Foundation
import MusterGRPC
import MusterIdentity
import SwiftASN1
import X509

/// Certificates made at test time: a CA per trust domain, SVIDs, and deliberately broken certificates.
struct TestPKI {
    let trustDomain: String
    let authority: CertificateAuthority

    init(trustDomain: String = "test.muster.local") throws {
        self.trustDomain = trustDomain
        authority = try CertificateAuthority.createRoot(trustDomain: trustDomain)
    }

    var bundlePEM: String { try! PEM.encode([authority.certificate]) }
    var pin: String { CAPin.of(authority.certificate) }

    func id(_ path: String) -> SPIFFEID { try! SPIFFEID(parsing: "spiffe://\(trustDomain)\(path)") }

    /// A proper X.509-SVID for `path` in this trust domain.
    func svid(_ path: String, serving: Bool = false) throws -> CertifiedKey {
        let key = P256.Signing.PrivateKey()
        let leaf = try authority.issueLeaf(
            spiffeID: id(path), publicKey: .init(key.publicKey),
            dnsNames: serving ? ["localhost"] : [], ipAddresses: serving ? ["127.0.0.1"] : [])
        return CertifiedKey(
            certificateChainPEM: try PEM.encode([leaf]),
            privateKeyPEM: try PEM.encode(Certificate.PrivateKey(key)))
    }

    /// A leaf signed by this CA whose subjectAltName holds exactly `uris` (none, two, a foreign domain…).
    func leaf(uris: [String]) throws -> CertifiedKey {
        let key = P256.Signing.PrivateKey()
        let publicKey = Certificate.PublicKey(key.publicKey)
        let extensions = try Certificate.Extensions {
            Critical(BasicConstraints.notCertificateAuthority)
            Critical(KeyUsage(digitalSignature: true))
            try ExtendedKeyUsage([.serverAuth, .clientAuth])
            if uris.isEmpty == false { SubjectAlternativeNames(uris.map { .uniformResourceIdentifier($0) }) }
            AuthorityKeyIdentifier(
                keyIdentifier: try authority.certificate.extensions.subjectKeyIdentifier?.keyIdentifier)
        }
        let certificate = try Certificate(
            version: .v3, serialNumber: .init(), publicKey: publicKey,
            notValidBefore: Date() - 60, notValidAfter: Date() + 3600,
            issuer: authority.certificate.subject,
            subject: try DistinguishedName { CommonName("broken") },
            signatureAlgorithm: .ecdsaWithSHA256, extensions: extensions, issuerPrivateKey: authority.privateKey)
        return CertifiedKey(
            certificateChainPEM: try PEM.encode([certificate]),
            privateKeyPEM: try PEM.encode(Certificate.PrivateKey(key)))
    }
}
