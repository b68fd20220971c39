import Foundation
import Logging
import MusterEdge
import MusterGRPC
import MusterIdentity
import MusterProto

/// Holds the poller's `WatchIdentity` stream open over mTLS with the agent's current SVID, reconnecting with
/// backoff, so a revocation reaches the agent (and its workloads) within seconds rather than at the next
/// renewal. The poller ends the stream with PERMISSION_DENIED when it refuses the identity.
struct IdentityWatch: Sendable {
    let state: AgentState
    let logger: Logger

    /// Returns the poller's reason once it refuses the identity; nil when cancelled.
    func run() async -> String? {
        var backoff = Backoff(cap: 30)
        while !Task.isCancelled {
            do {
                try await watchOnce { backoff.reset() }
                logger.info("the poller closed the identity watch; reopening")
            } catch let error as RPCError where error.code == .permissionDenied {
                return error.message
            } catch let error as RPCError where error.code == .unimplemented {
                logger.warning(
                    "the poller does not offer identity watches; revocations reach this agent at its next renewal")
                return await Self.parked()
            } catch {
                if Task.isCancelled { return nil }
                logger.info("identity watch interrupted; reconnecting", metadata: ["error": "\(error)"])
            }
            try? await Task.sleep(for: backoff.next())
        }
        return nil
    }

    private func watchOnce(opened: () -> Void) async throws {
        guard state.hasIdentity else { throw AgentError("no identity to watch") }
        // The stream is silent until a revocation: pings find a dead connection within 30 s.
        let channel = try AgentOnboarding.pollerChannel(
            state: state, keepalive: .init(interval: .seconds(20), timeout: .seconds(10)))
        try await channel.serverStreaming(
            "/muster.onboarding.v1.EdgeOnboarding/WatchIdentity", Muster_Onboarding_V1_WatchIdentityRequest(),
            as: Muster_Onboarding_V1_IdentityNotice.self
        ) { notices in
            for try await notice in notices {
                opened()
                logger.debug("identity watch open", metadata: ["spiffe_id": "\(notice.spiffeID)"])
            }
        }
    }

    /// Waits until cancelled (a poller without watches: nothing more to do here).
    private static func parked() async -> String? {
        while !Task.isCancelled { try? await Task.sleep(for: .seconds(3600)) }
        return nil
    }
}
