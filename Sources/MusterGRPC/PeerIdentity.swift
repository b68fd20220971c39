import Foundation
import MusterIdentity
import SwiftASN1
import X509

/// A TLS peer's identity: the SPIFFE ID of its X.509-SVID and the chain it presented (leaf first).
public struct PeerIdentity: Sendable {
    public let spiffeID: SPIFFEID
    public let chain: [Certificate]

    public var leaf: Certificate { chain[0] }

    /// Reads the SPIFFE ID from a PEM chain: the leaf must carry exactly one URI SAN, a valid SPIFFE ID.
    public init(pemChain: String) throws(RPCError) {
        let certificates: [Certificate]
        do {
            certificates = try PEMDocument.parseMultiple(pemString: pemChain).map { try Certificate(pemDocument: $0) }
        } catch {
            throw RPCError(code: .unauthenticated, message: "the peer's certificate chain could not be parsed")
        }
        guard let leaf = certificates.first else {
            throw RPCError(code: .unauthenticated, message: "the peer presented no certificate")
        }
        self.spiffeID = try Self.spiffeID(of: leaf)
        self.chain = certificates
    }

    /// The SPIFFE ID an X.509-SVID carries (its one and only URI SAN), by the identity module's rule.
    public static func spiffeID(of certificate: Certificate) throws(RPCError) -> SPIFFEID {
        do {
            return try SVIDVerifier.spiffeID(of: certificate, what: "the peer certificate")
        } catch {
            throw RPCError(code: .unauthenticated, message: error.message)
        }
    }
}

/// Parsed peer identities by PEM chain, so each connection's chain is parsed once, not once per call.
final class PeerIdentityCache: Sendable {
    private let entries = LockedValue<[String: Result<PeerIdentity, RPCError>]>([:])
    private let limit: Int

    init(limit: Int = 1024) { self.limit = limit }

    func identity(forChain pem: String) throws(RPCError) -> PeerIdentity {
        if let cached = entries.withLock({ $0[pem] }) { return try cached.get() }
        let result: Result<PeerIdentity, RPCError>
        do {
            result = .success(try PeerIdentity(pemChain: pem))
        } catch {
            result = .failure(error)
        }
        entries.withLock { entries in
            if entries.count >= limit { entries.removeAll(keepingCapacity: true) }
            entries[pem] = result
        }
        return try result.get()
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
                return RPCError(code: .permissionDenied, message: "\(peer.spiffeID) is not in trust domain \(trustDomain)")
            }
            return nil
        }
    }

    /// Exactly one SPIFFE ID.
    public static func exactly(_ id: SPIFFEID) -> PeerPolicy {
        PeerPolicy { peer in
            guard let peer else { return .needsCertificate }
            return peer.spiffeID == id ? nil : RPCError(code: .permissionDenied, message: "\(peer.spiffeID) is not allowed here")
        }
    }

    /// Any ID at or below `prefix`, compared by path segment.
    public static func within(_ prefix: SPIFFEID) -> PeerPolicy {
        PeerPolicy { peer in
            guard let peer else { return .needsCertificate }
            return peer.spiffeID.isWithin(prefix) ? nil : RPCError(code: .permissionDenied, message: "\(peer.spiffeID) is not allowed here")
        }
    }
}

extension RPCError {
    static let needsCertificate = RPCError(code: .unauthenticated, message: "this method needs a client X.509-SVID")
}
