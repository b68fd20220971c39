import Foundation
import MusterDatabase
import MusterGRPC
import MusterIdentity
import MusterProto
import X509

/// Renewal: an agent or checker of this poller, over mTLS with the SVID it holds, for a fresh key.
extension EdgeOnboardingService {
    func renew(_ request: Muster_Onboarding_V1_RenewRequest, peer: PeerIdentity?, from address: String) async throws
        -> Muster_Onboarding_V1_RenewResponse
    {
        guard let peer else { throw RPCError.needsAgentSVID }
        guard !standing.isRevoked else { throw PollerStanding.refusal }
        let serial = peer.serial
        guard let issued = try await store({ try await cache.issued(serial: serial) }),
            issued.spiffeID == peer.spiffeID.description
        else {
            logger.warning(
                "renewal refused",
                metadata: [
                    "spiffe_id": "\(peer.spiffeID)", "serial": "\(serial)", "reason": "not issued by this poller",
                ])
            throw RPCError(code: .permissionDenied, message: "this SVID was not issued by this poller")
        }
        guard issued.revokedAt == nil else {
            logger.warning(
                "renewal refused",
                metadata: ["spiffe_id": "\(peer.spiffeID)", "serial": "\(serial)", "reason": "revoked"])
            throw RPCError(code: .permissionDenied, message: "\(peer.spiffeID) is revoked")
        }
        let key = try Self.publicKey(fromCSR: request.csr)
        let (leaf, chain) = try issue(peer.spiffeID, key: key)
        let recorded = try await store {
            try await cache.recordRenewal(
                serial: "\(leaf.serialText)", of: issued, at: Clock.nowMillis(),
                notAfter: Clock.millis(leaf.notValidAfter))
        }
        guard recorded else { throw RPCError(code: .permissionDenied, message: "\(peer.spiffeID) is revoked") }
        logger.info(
            "agent renewed",
            metadata: [
                "spiffe_id": "\(peer.spiffeID)", "from": "\(address)", "serial": "\(leaf.serialText)",
            ])
        var response = Muster_Onboarding_V1_RenewResponse()
        response.svidChain = chain
        response.bundle = identity.rootsDER
        response.selectors = try await store { try await cache.package(id: issued.packageID) }?.selectorList ?? []
        return response
    }

    /// Only an agent or checker SVID below this poller, whose verified path runs through one of this poller's
    /// own CAs (the current one, or the one it replaced), may renew. A CA of another poller, or an earlier holder
    /// of this poller's name, signs nothing this poller accepts.
    var agentPolicy: PeerPolicy {
        let identity = self.identity
        return PeerPolicy { peer in
            guard let peer else { return .needsAgentSVID }
            let pollerName = MusterID(identity.spiffeID)?.pollerName
            guard let id = peer.musterID, id.componentKind != nil, id.pollerName == pollerName else {
                return RPCError(
                    code: .permissionDenied,
                    message: "\(peer.spiffeID) is not an agent or checker of \(identity.spiffeID)")
            }
            guard identity.issuedHere(peer.issuer) else {
                return RPCError(
                    code: .permissionDenied, message: "\(peer.spiffeID) was not signed by \(identity.spiffeID)'s CA")
            }
            return nil
        }
    }
}
