import Foundation
import MusterGRPC
import MusterIdentity
import MusterProto

/// `WatchIdentity`: a running agent holds this stream open with its SVID; it ends with PERMISSION_DENIED as
/// soon as the poller learns the identity is revoked (Core's revocation through the package stream, or Core
/// revoking the poller), so the agent can stop serving it to workloads before the SVID expires.
extension EdgeOnboardingService {
    /// How long a watch sleeps between re-reads of the cache when nothing wakes it (a missed wake-up costs this much).
    static let watchRecheck: Duration = .seconds(300)

    func watchIdentity(peer: PeerIdentity?, writer: ResponseWriter<Muster_Onboarding_V1_IdentityNotice>)
        async throws
    {
        guard let peer else { throw RPCError.needsAgentSVID }
        try await standing.revocations.watching(peer.spiffeID.description) { watch in
            try await checkStanding(peer)
            var notice = Muster_Onboarding_V1_IdentityNotice()
            notice.spiffeID = peer.spiffeID.description
            try await writer.write(notice)
            while !Task.isCancelled {
                _ = await watch.sleep(for: Self.watchRecheck)
                if Task.isCancelled { break }
                try await checkStanding(peer)
            }
        }
    }

    /// Returns while the caller's SVID still stands; PERMISSION_DENIED once it does not.
    func checkStanding(_ peer: PeerIdentity) async throws {
        guard !standing.isRevoked else {
            throw RPCError(
                code: .permissionDenied,
                message: "\(identity.spiffeID) was revoked by Core; the identities it issued are no longer valid")
        }
        guard let issued = try await store({ try await cache.issued(serial: peer.serial) }),
            issued.spiffeID == peer.spiffeID.description
        else {
            throw RPCError(code: .permissionDenied, message: "this SVID was not issued by this poller")
        }
        guard issued.revokedAt == nil else {
            logger.notice(
                "identity watch ended: revoked",
                metadata: ["spiffe_id": "\(peer.spiffeID)", "serial": "\(peer.serial)"])
            throw RPCError(code: .permissionDenied, message: "\(peer.spiffeID) is revoked")
        }
    }
}
