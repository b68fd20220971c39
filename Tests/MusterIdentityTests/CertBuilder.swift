import Crypto
import Foundation
import MusterIdentity
import SwiftASN1
import X509

/// Builds certificates that bend one rule at a time, signed by a given CA.
struct CertBuilder {
    var uris: [String]
    var isCA = false
    var pathLength: Int? = nil
    var keyUsage: KeyUsage? = KeyUsage(digitalSignature: true)
    var keyUsageCritical = true
    var notBefore = Date() - 60
    var notAfter = Date() + 3600
    var key = P256.Signing.PrivateKey()

    func sign(by issuer: CertificateAuthority) throws -> Certificate {
        let publicKey = Certificate.PublicKey(key.publicKey)
        let extensions = try Certificate.Extensions {
            Critical(
                isCA
                    ? BasicConstraints.isCertificateAuthority(maxPathLength: pathLength)
                    : BasicConstraints.notCertificateAuthority)
            if let keyUsage { try Certificate.Extension(keyUsage, critical: keyUsageCritical) }
            if uris.isEmpty == false { SubjectAlternativeNames(uris.map { .uniformResourceIdentifier($0) }) }
            SubjectKeyIdentifier(hash: publicKey)
            AuthorityKeyIdentifier(keyIdentifier: try issuer.certificate.extensions.subjectKeyIdentifier?.keyIdentifier)
        }
        return try Certificate(
            version: .v3, serialNumber: .init(), publicKey: publicKey, notValidBefore: notBefore,
            notValidAfter: notAfter,
            issuer: issuer.certificate.subject, subject: try DistinguishedName { CommonName("test") },
            signatureAlgorithm: .ecdsaWithSHA256, extensions: extensions, issuerPrivateKey: issuer.privateKey)
    }

    /// Signs and wraps the result as a CA that can sign further certificates.
    func signAsAuthority(by issuer: CertificateAuthority) throws -> CertificateAuthority {
        CertificateAuthority(
            certificate: try sign(by: issuer), privateKey: Certificate.PrivateKey(key),
            chainToRoot: [issuer.certificate] + issuer.chainToRoot)
    }
}

/// A root plus a poller downstream CA made the way Muster makes them.
struct TestAuthority {
    let trustDomain = "example.org"
    let root: CertificateAuthority

    init() throws { root = try CertificateAuthority.createRoot(trustDomain: "example.org") }

    func downstream(poller: String) throws -> CertificateAuthority {
        let key = P256.Signing.PrivateKey()
        let ca = try root.issueDownstreamCA(
            pollerID: try MusterIDs.poller(trustDomain: trustDomain, name: poller), publicKey: .init(key.publicKey))
        return CertificateAuthority(
            certificate: ca, privateKey: Certificate.PrivateKey(key), chainToRoot: [root.certificate])
    }

    func leaf(_ id: String, from issuer: CertificateAuthority? = nil) throws -> Certificate {
        let key = P256.Signing.PrivateKey()
        return try (issuer ?? root).issueLeaf(spiffeID: try SPIFFEID(parsing: id), publicKey: .init(key.publicKey))
    }

    var verifier: SVIDVerifier { SVIDVerifier(trustDomain: trustDomain, roots: [root.certificate]) }
}
