import Foundation
import MusterGRPC
import MusterIdentity
import MusterProto
import MusterStore
import X509

/// Renewal: an agent or checker of this poller, over mTLS with the SVID it holds, for a fresh key.
extension EdgeOnboardingService {
    func renew(_ request: Muster_Onboarding_V1_RenewRequest, peer: PeerIdentity?, from address: String) async throws -> Muster_Onboarding_V1_RenewResponse {
        guard let peer else { throw RPCError.needsAgentSVID }
        guard !standing.isRevoked else { throw PollerStanding.refusal }
        let serial = "\(peer.leaf.serialNumber)"
        guard let issued = try await store({ try await cache.issued(serial: serial) }), issued.spiffeID == peer.spiffeID.description else {
            logger.warning("renewal refused", metadata: ["spiffe_id": "\(peer.spiffeID)", "serial": "\(serial)", "reason": "not issued by this poller"])
            throw RPCError(code: .permissionDenied, message: "this SVID was not issued by this poller")
        }
        guard issued.revokedAt == nil else {
            logger.warning("renewal refused", metadata: ["spiffe_id": "\(peer.spiffeID)", "serial": "\(serial)", "reason": "revoked"])
            throw RPCError(code: .permissionDenied, message: "\(peer.spiffeID) is revoked")
        }
        let key = try Self.publicKey(fromCSR: request.csr)
        let leaf = try issue(peer.spiffeID, key: key)
        let recorded = try await store {
            try await cache.recordRenewal(serial: "\(leaf.certificate.serialNumber)", of: issued, at: Clock.nowMillis(),
                                          notAfter: Clock.millis(leaf.certificate.notValidAfter))
        }
        guard recorded else { throw RPCError(code: .permissionDenied, message: "\(peer.spiffeID) is revoked") }
        logger.info("agent renewed", metadata: ["spiffe_id": "\(peer.spiffeID)", "from": "\(address)", "serial": "\(leaf.certificate.serialNumber)"])
        var response = Muster_Onboarding_V1_RenewResponse()
        response.svidChain = try leaf.chain.map { try $0.derData() }
        response.bundle = try identity.roots.map { try $0.derData() }
        return response
    }

    /// Only an agent or checker SVID below this poller, signed by this poller's CA, may renew.
    var agentPolicy: PeerPolicy {
        let pollerID = identity.spiffeID
        return PeerPolicy { peer in
            guard let peer else { return .needsAgentSVID }
            let segments = peer.spiffeID.segments
            guard peer.spiffeID.isWithin(pollerID), segments.count == 5, ["agent", "checker"].contains(segments[3]) else {
                return RPCError(code: .permissionDenied, message: "\(peer.spiffeID) is not an agent or checker of \(pollerID)")
            }
            guard peer.chain.count >= 2, (try? SVIDVerifier.spiffeID(of: peer.chain[1])) == pollerID else {
                return RPCError(code: .permissionDenied, message: "\(peer.spiffeID) was not signed by \(pollerID)'s CA")
            }
            return nil
        }
    }
}
