import Foundation
import SwiftASN1
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

    /// Verifies `chain` (leaf first, then any intermediates the peer sent) and returns the path that validated:
    /// the policy must look at that path, never at what the peer sent, since a peer may send CAs that sign nothing.
    public func verify(chain: [Certificate], at time: Date = Date()) async throws(IdentityError) -> VerifiedSVID {
        guard let leaf = chain.first else { throw IdentityError(.chainInvalid, "no certificate was presented") }
        let id = try Self.checkLeaf(leaf)
        guard id.trustDomain == trustDomain else {
            throw IdentityError(.wrongTrustDomain, "\(id) is not in trust domain \(trustDomain)")
        }
        var verifier = Verifier(rootCertificates: CertificateStore(roots)) {
            RFC5280Policy(validationTime: time)
            SVIDNamesPolicy()
        }
        let result = await verifier.validate(leaf: leaf, intermediates: CertificateStore(Array(chain.dropFirst())))
        guard case .validCertificate(let validated) = result else {
            if case .couldNotValidate(let failures) = result {
                let reasons = failures.map { String(describing: $0.policyFailureReason) }
                throw IdentityError(
                    .chainInvalid,
                    "the chain does not validate against the trust bundle: \(Self.summary(reasons, leaf: leaf, at: time))"
                )
            }
            throw IdentityError(.chainInvalid, "the chain does not validate against the trust bundle")
        }
        let path = Array(validated)
        // A trust anchor is never its own leaf: an SVID is always signed by a CA of the bundle.
        guard path.count >= 2 else {
            throw IdentityError(.chainInvalid, "the leaf is itself a trust anchor, not an SVID signed by one")
        }
        try Self.checkIssuers(Array(path.dropFirst()), leafID: id, leaf: leaf)
        return VerifiedSVID(id: id, path: path)
    }

    /// First contact through a CA pin: the certificate in the presented chain whose key has `pin` becomes the one
    /// trust anchor, and the rest is verified exactly like a bundle chain. Never trust-on-first-use.
    public static func verifyPinned(chain: [Certificate], pin: String, trustDomain: String, at time: Date = Date())
        async throws(IdentityError) -> VerifiedSVID
    {
        guard let anchor = chain.first(where: { CAPin.of($0) == pin }) else {
            throw IdentityError(.chainInvalid, "no certificate in the chain matches the CA pin \(pin)")
        }
        guard anchor != chain.first else {
            throw IdentityError(.chainInvalid, "the pinned key is the peer's own leaf, not a CA")
        }
        guard let constraints = try? anchor.extensions.basicConstraints, case .isCertificateAuthority = constraints
        else {
            throw IdentityError(.chainInvalid, "the pinned certificate is not a CA")
        }
        let verifier = SVIDVerifier(trustDomain: trustDomain, roots: [anchor])
        return try await verifier.verify(chain: chain.filter { $0 != anchor }, at: time)
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
        guard usageExtension.critical else {
            throw IdentityError(.notAnSVID, "the leaf's key usage is not marked critical")
        }
        guard let usage = try? KeyUsage(usageExtension) else {
            throw IdentityError(.notAnSVID, "the leaf's key usage cannot be parsed")
        }
        guard usage.digitalSignature else {
            throw IdentityError(.notAnSVID, "the leaf's key usage lacks digitalSignature")
        }
        guard usage.keyCertSign == false, usage.cRLSign == false else {
            throw IdentityError(
                .notAnSVID, "the leaf's key usage includes keyCertSign or cRLSign; a leaf SVID signs no certificates")
        }
        return id
    }

    /// Muster's path rule: every CA between leaf and root carries the SPIFFE ID of the poller it belongs to,
    /// and the leaf's ID lies strictly below it; a leaf under such a CA names no DNS host or IP address (only
    /// the root issues serving certificates). `issuers` runs from the leaf's issuer up to the root.
    static func checkIssuers(_ issuers: [Certificate], leafID: SPIFFEID, leaf: Certificate) throws(IdentityError) {
        for (index, issuer) in issuers.enumerated() {
            if let usage = try? issuer.extensions.keyUsage, usage.keyCertSign == false {
                throw IdentityError(.chainInvalid, "CA certificate \(index + 1) of the chain lacks keyCertSign")
            }
            let isRoot = index == issuers.count - 1
            guard isRoot == false else { break }
            let scope = try spiffeID(of: issuer, what: "intermediate CA \(index + 1)")
            guard case .poller = MusterID(scope), scope.trustDomain == leafID.trustDomain, leafID.isWithin(scope),
                leafID != scope
            else {
                throw IdentityError(
                    .outsidePollerScope, "\(leafID) is not under \(scope), the scope of the CA that signed it")
            }
        }
        if issuers.count > 1, let names = try? leaf.extensions.subjectAlternativeNames {
            let hostNames = names.filter { name in
                switch name {
                case .dnsName, .ipAddress: true
                default: false
                }
            }
            guard hostNames.isEmpty else {
                throw IdentityError(
                    .outsidePollerScope, "a leaf signed by a poller's CA may not name DNS hosts or IP addresses")
            }
        }
    }

    /// The SPIFFE ID an X.509-SVID (or a Muster CA) carries: its one and only URI SAN.
    public static func spiffeID(of certificate: Certificate, what: String = "the certificate") throws(IdentityError)
        -> SPIFFEID
    {
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

/// A chain the verifier accepted: the leaf's SPIFFE ID and the path that validated, leaf first, trust anchor last.
public struct VerifiedSVID: Sendable {
    public let id: SPIFFEID
    /// Leaf, then each CA up to and including the trust anchor: what was verified, not what the peer sent.
    public let path: [Certificate]

    public init(id: SPIFFEID, path: [Certificate]) {
        self.id = id
        self.path = path
    }

    public var leaf: Certificate { path[0] }
    /// The CA that signed the leaf (a poller's CA, or the root itself).
    public var issuer: Certificate { path[1] }
    /// True when the root signed the leaf directly (Core's and pollers' own SVIDs); false under a poller's CA.
    public var isRootIssued: Bool { path.count == 2 }
    /// What the ID names in Muster's scheme; nil for IDs outside it.
    public var musterID: MusterID? { MusterID(id) }
}

/// Tells swift-certificates' verifier that a critical subjectAltName is understood: RFC 5280 asks for it to be
/// critical when the subject is empty, and `SVIDVerifier.checkLeaf` checks its URI itself.
struct SVIDNamesPolicy: VerifierPolicy {
    let verifyingCriticalExtensions: [ASN1ObjectIdentifier] = [.X509ExtensionID.subjectAlternativeName]

    mutating func chainMeetsPolicyRequirements(chain: UnverifiedCertificateChain) async -> PolicyEvaluationResult {
        .meetsPolicy
    }
}
