import Foundation
import MusterConcurrency
import MusterIdentity
import SwiftASN1
import X509

/// A TLS peer's identity after the one verifier accepted its chain: the SPIFFE ID, what it names in Muster's
/// scheme, and the path that validated (leaf to trust anchor). What the peer merely sent is not kept.
public struct PeerIdentity: Sendable {
    public let verified: VerifiedSVID

    public init(verified: VerifiedSVID) { self.verified = verified }

    public var spiffeID: SPIFFEID { verified.id }
    public var musterID: MusterID? { verified.musterID }
    public var leaf: Certificate { verified.leaf }
    /// The CA that signed the leaf, as validated.
    public var issuer: Certificate { verified.issuer }
    public var isRootIssued: Bool { verified.isRootIssued }
    /// The leaf's serial number as Muster records it.
    public var serial: String { leaf.serialText }

    /// Parses a PEM chain (leaf first) as a peer sent it.
    static func presented(pemChain: String) throws(RPCError) -> [Certificate] {
        let certificates: [Certificate]
        do {
            certificates = try PEMDocument.parseMultiple(pemString: pemChain).map { try Certificate(pemDocument: $0) }
        } catch {
            throw RPCError(code: .unauthenticated, message: "the peer's certificate chain could not be parsed")
        }
        guard !certificates.isEmpty else {
            throw RPCError(code: .unauthenticated, message: "the peer presented no certificate")
        }
        return certificates
    }

    /// The status a refused chain gets: a chain that validates but breaks Muster's scope or trust-domain rule
    /// is a misbound identity (PERMISSION_DENIED); anything else is no usable SVID (UNAUTHENTICATED).
    static func refusal(_ error: IdentityError) -> RPCError {
        switch error.code {
        case .outsidePollerScope, .wrongTrustDomain: RPCError(code: .permissionDenied, message: error.message)
        default: RPCError(code: .unauthenticated, message: error.message)
        }
    }
}

/// Who may call a method, decided from the caller's verified SPIFFE identity.
public struct PeerPolicy: Sendable {
    let decide: @Sendable (PeerIdentity?) -> RPCError?

    public init(_ decide: @escaping @Sendable (PeerIdentity?) -> RPCError?) { self.decide = decide }

    /// Anyone, with or without a client certificate (first contact with a join token).
    public static let anyone = PeerPolicy { _ in nil }

    /// Any peer holding an SVID of `trustDomain`.
    public static func trustDomain(_ trustDomain: String) -> PeerPolicy {
        PeerPolicy { peer in
            guard let peer else { return .needsCertificate }
            guard peer.spiffeID.trustDomain == trustDomain else {
                return RPCError(
                    code: .permissionDenied, message: "\(peer.spiffeID) is not in trust domain \(trustDomain)")
            }
            return nil
        }
    }

    /// Exactly one SPIFFE ID; with `issuedByRoot`, only from an SVID the root signed itself (Core's and
    /// pollers' own SVIDs), never from one a poller's CA signed.
    public static func exactly(_ id: SPIFFEID, issuedByRoot: Bool = false) -> PeerPolicy {
        PeerPolicy { peer in
            guard let peer else { return .needsCertificate }
            guard peer.spiffeID == id else {
                return RPCError(
                    code: .permissionDenied, message: "\(peer.spiffeID) is not allowed here; expected \(id)")
            }
            guard !issuedByRoot || peer.isRootIssued else {
                return RPCError(
                    code: .permissionDenied, message: "\(id) must be issued by the root CA, not by a poller's CA")
            }
            return nil
        }
    }

    /// Any ID at or below `prefix`, compared by path segment.
    public static func within(_ prefix: SPIFFEID) -> PeerPolicy {
        PeerPolicy { peer in
            guard let peer else { return .needsCertificate }
            return peer.spiffeID.isWithin(prefix)
                ? nil : RPCError(code: .permissionDenied, message: "\(peer.spiffeID) is not allowed here")
        }
    }
}

extension RPCError {
    static let needsCertificate = RPCError(code: .unauthenticated, message: "this method needs a client X.509-SVID")
}
