import Foundation
import X509

/// Verifies X.509-SVID chains: RFC 5280 path validation against the trust bundle (name constraints included),
/// every X.509-SVID leaf rule, and Muster's poller path rule. Fails closed with a specific `IdentityError`.
public struct SVIDVerifier: Sendable {
    public let trustDomain: String
    public let roots: [Certificate]

    public init(trustDomain: String, roots: [Certificate]) {
        self.trustDomain = trustDomain
        self.roots = roots
    }

    /// Verifies `chain` (leaf first, then any intermediates) and returns the leaf's SPIFFE ID.
    public func verify(chain: [Certificate], at time: Date = Date()) async throws(IdentityError) -> SPIFFEID {
        guard let leaf = chain.first else { throw IdentityError(.chainInvalid, "no certificate was presented") }
        let id = try Self.checkLeaf(leaf)
        guard id.trustDomain == trustDomain else {
            throw IdentityError(.wrongTrustDomain, "\(id) is not in trust domain \(trustDomain)")
        }
        var verifier = Verifier(rootCertificates: CertificateStore(roots)) { RFC5280Policy(validationTime: time) }
        let result = await verifier.validate(leaf: leaf, intermediates: CertificateStore(Array(chain.dropFirst())))
        guard case .validCertificate(let path) = result else {
            if case .couldNotValidate(let failures) = result {
                let reasons = failures.map { String(describing: $0.policyFailureReason) }
                throw IdentityError(.chainInvalid, "the chain does not validate against the trust bundle: \(Self.summary(reasons, leaf: leaf, at: time))")
            }
            throw IdentityError(.chainInvalid, "the chain does not validate against the trust bundle")
        }
        try Self.checkIssuers(Array(path.dropFirst()), leafID: id)
        return id
    }

    /// The X.509-SVID leaf rules; returns the leaf's SPIFFE ID.
    public static func checkLeaf(_ leaf: Certificate) throws(IdentityError) -> SPIFFEID {
        let id = try spiffeID(of: leaf, what: "the leaf")
        guard id.path.isEmpty == false else {
            throw IdentityError(.notAnSVID, "a leaf SVID's ID must have a path; \(id) names the trust domain itself")
        }
        guard let constraints = try? leaf.extensions.basicConstraints else {
            throw IdentityError(.notAnSVID, "the leaf has no basicConstraints extension")
        }
        guard case .notCertificateAuthority = constraints else {
            throw IdentityError(.notAnSVID, "the leaf is marked cA=true; a leaf SVID is never a CA")
        }
        guard let usageExtension = leaf.extensions[oid: .X509ExtensionID.keyUsage] else {
            throw IdentityError(.notAnSVID, "the leaf has no key usage extension")
        }
        guard usageExtension.critical else { throw IdentityError(.notAnSVID, "the leaf's key usage is not marked critical") }
        guard let usage = try? KeyUsage(usageExtension) else { throw IdentityError(.notAnSVID, "the leaf's key usage cannot be parsed") }
        guard usage.digitalSignature else { throw IdentityError(.notAnSVID, "the leaf's key usage lacks digitalSignature") }
        guard usage.keyCertSign == false, usage.cRLSign == false else {
            throw IdentityError(.notAnSVID, "the leaf's key usage includes keyCertSign or cRLSign; a leaf SVID signs no certificates")
        }
        return id
    }

    /// Muster's path rule: every CA between leaf and root carries the SPIFFE ID of the poller it belongs to,
    /// and the leaf's ID lies strictly below it. `issuers` runs from the leaf's issuer up to the root.
    public static func checkIssuers(_ issuers: [Certificate], leafID: SPIFFEID) throws(IdentityError) {
        for (index, issuer) in issuers.enumerated() {
            if let usage = try? issuer.extensions.keyUsage, usage.keyCertSign == false {
                throw IdentityError(.chainInvalid, "CA certificate \(index + 1) of the chain lacks keyCertSign")
            }
            let isRoot = index == issuers.count - 1
            guard isRoot == false else { break }
            let scope = try spiffeID(of: issuer, what: "intermediate CA \(index + 1)")
            guard scope.trustDomain == leafID.trustDomain, leafID.isWithin(scope), leafID != scope else {
                throw IdentityError(.outsidePollerScope, "\(leafID) is not under \(scope), the scope of the CA that signed it")
            }
        }
    }

    /// The SPIFFE ID an X.509-SVID (or a Muster CA) carries: its one and only URI SAN.
    public static func spiffeID(of certificate: Certificate, what: String = "the certificate") throws(IdentityError) -> SPIFFEID {
        let names: SubjectAlternativeNames?
        do {
            names = try certificate.extensions.subjectAlternativeNames
        } catch {
            throw IdentityError(.notAnSVID, "\(what)'s subjectAltName cannot be parsed")
        }
        let uris = (names ?? SubjectAlternativeNames()).compactMap { name -> String? in
            if case .uniformResourceIdentifier(let uri) = name { return uri }
            return nil
        }
        guard uris.count == 1 else {
            throw IdentityError(.notAnSVID, "\(what) has \(uris.count) URI SANs; an X.509-SVID has exactly one")
        }
        do {
            return try SPIFFEID(parsing: uris[0])
        } catch {
            throw IdentityError(.notAnSVID, "\(what)'s URI SAN is not a SPIFFE ID: \(error.message)")
        }
    }

    private static func summary(_ reasons: [String], leaf: Certificate, at time: Date) -> String {
        if leaf.notValidAfter < time { return "the leaf expired at \(leaf.notValidAfter)" }
        if leaf.notValidBefore > time { return "the leaf is not valid until \(leaf.notValidBefore)" }
        return reasons.first ?? "no path to a trusted root"
    }
}
