import Foundation
import Logging
import MusterEdge
import MusterGRPC
import MusterIdentity
import MusterProto
import X509

/// `muster-agent run`: keeps the SVID fresh, renewing through the poller at half-life and retrying with
/// backoff while the poller is unreachable. Stops with `AgentError(revoked: true)` when the poller refuses
/// the identity (revoked), after moving the identity aside so nothing keeps using it.
public struct AgentRunner: Sendable {
    let state: AgentState
    let logger: Logger

    public init(state: AgentState, logger: Logger) {
        self.state = state
        self.logger = logger
    }

    public func run() async throws {
        var backoff = Backoff(cap: 30)
        state.recoverInterruptedRenewal()
        let config = try state.config()
        logger.notice("agent running", metadata: ["spiffe_id": "\(config.spiffeID)", "poller": "\(config.poller)"])
        while !Task.isCancelled {
            let leaf = try state.leaf()
            let half = leaf.notValidBefore.addingTimeInterval(
                leaf.notValidAfter.timeIntervalSince(leaf.notValidBefore) / 2)
            let wait = half.timeIntervalSinceNow
            if wait > 0 {
                try await Task.sleep(for: .seconds(min(wait, 300)))
                continue
            }
            do {
                let renewed = try await AgentOnboarding.renew(state: state)
                backoff.reset()
                logger.notice(
                    "SVID renewed",
                    metadata: [
                        "until": "\(renewed.notValidAfter.formatted(.iso8601))", "serial": "\(renewed.serialText)",
                    ])
            } catch let error as AgentError where error.revoked {
                logger.error("the poller refused this identity; stopping", metadata: ["reason": "\(error.message)"])
                try? FileManager.default.moveItem(
                    atPath: state.identityDirectory,
                    toPath: state.identityDirectory + ".revoked-\(Int(Date().timeIntervalSince1970))")
                throw error
            } catch {
                let expired = leaf.notValidAfter <= Date()
                logger.warning(
                    "renewal failed; retrying", metadata: ["error": "\(error)", "svid_expired": "\(expired)"])
                try await Task.sleep(for: backoff.next())
            }
        }
    }
}

/// What `muster-agent status` reports: the identity, its lifetime, and whether the poller answers.
public enum AgentStatus {
    public static func read(state: AgentState, timeout: Duration = .seconds(5)) async -> (
        lines: [String], reachable: Bool
    ) {
        guard let config = try? state.config(), let leaf = try? state.leaf(), let identity = try? state.identity()
        else {
            return (["identity:  none in \(state.directory) (run muster-agent install or join)"], false)
        }
        var lines = [
            "identity:  \(config.spiffeID)",
            "svid:      serial \(leaf.serialText), until \(leaf.notValidAfter.formatted(.iso8601))\(leaf.notValidAfter <= Date() ? " (EXPIRED)" : "")",
            "poller:    \(config.poller) (\(config.pollerID), pinned \(config.caPin))",
        ]
        do {
            let channel = try GRPCChannel(
                target: config.poller,
                security: .tls(
                    ClientTLS(
                        trust: .bundle(rootsPEM: identity.bundlePEM), server: try SPIFFEID(parsing: config.pollerID),
                        identity: CertifiedKey(certificateChainPEM: identity.chainPEM, privateKeyPEM: identity.keyPEM)))
            )
            let bundle = try await channel.unary(
                "/muster.onboarding.v1.EdgeOnboarding/GetBundle", Muster_Onboarding_V1_GetBundleRequest(),
                as: Muster_Onboarding_V1_GetBundleResponse.self, options: CallOptions(timeout: timeout))
            lines.append(
                "poller:    reachable over TLS, trust domain \(bundle.trustDomain), \(bundle.bundle.count) root(s)")
            return (lines, true)
        } catch {
            lines.append("poller:    unreachable (\(error))")
            return (lines, false)
        }
    }
}
