import Foundation
import Logging
import MusterConcurrency
import MusterEdge
import MusterGRPC
import MusterIdentity
import MusterProto
import X509

/// `muster-agent run`: keeps the SVID fresh, renewing through the poller at half-life and retrying with
/// backoff while the poller is unreachable, and holds the poller's identity watch open so a revocation is
/// heard at once. When the poller refuses the identity (revoked) it is moved aside so nothing keeps using it;
/// without a Workload API the run then ends with `AgentError(revoked: true)`, with one it keeps answering
/// PERMISSION_DENIED to workloads until stopped. With a Workload API, an agent with no identity (or an
/// expired one) waits for one and answers UNAVAILABLE meanwhile.
public struct AgentRunner: Sendable {
    let state: AgentState
    let logger: Logger
    /// What the Workload API serves; nil when it is not served.
    let workload: WorkloadIdentity?
    private let revocation = LockedValue<String?>(nil)
    private let wakeup = Wakeup()

    public init(state: AgentState, logger: Logger, workload: WorkloadIdentity? = nil) {
        self.state = state
        self.logger = logger
        self.workload = workload
    }

    /// The renewal loop.
    public func run() async throws {
        var backoff = Backoff(cap: 30)
        state.recoverInterruptedRenewal()
        if workload == nil || state.hasIdentity {
            let config = try state.config()
            logger.notice("agent running", metadata: ["spiffe_id": "\(config.spiffeID)", "poller": "\(config.poller)"])
        }
        while !Task.isCancelled {
            if let reason = revocation.withLock({ $0 }) {
                guard workload != nil else {
                    throw AgentError("the poller refused this identity: \(reason)", revoked: true)
                }
                _ = await wakeup.sleep(for: .seconds(3600))
                continue
            }
            guard state.hasIdentity else {
                if workload == nil { _ = try state.config() }
                publish(.unavailable("no identity in \(state.directory) yet (muster-agent install, join or enroll)"))
                _ = await wakeup.sleep(for: .seconds(5))
                continue
            }
            let leaf: Certificate
            do { leaf = try state.leaf() } catch {
                // The identity watch may have moved a revoked identity aside since the check above.
                if revocation.withLock({ $0 }) != nil || !state.hasIdentity { continue }
                throw error
            }
            publishHeld(leaf)
            let half = leaf.notValidBefore.addingTimeInterval(
                leaf.notValidAfter.timeIntervalSince(leaf.notValidBefore) / 2)
            let wait = half.timeIntervalSinceNow
            if wait > 0 {
                _ = await wakeup.sleep(for: .seconds(min(wait, 300)))
                continue
            }
            do {
                let renewed = try await AgentOnboarding.renew(state: state)
                backoff.reset()
                publishHeld(renewed)
                logger.notice(
                    "SVID renewed",
                    metadata: [
                        "until": "\(renewed.notValidAfter.formatted(.iso8601))", "serial": "\(renewed.serialText)",
                    ])
            } catch let error as AgentError where error.revoked {
                refused(error.message)
            } catch {
                let expired = leaf.notValidAfter <= Date()
                logger.warning(
                    "renewal failed; retrying", metadata: ["error": "\(error)", "svid_expired": "\(expired)"])
                let delay = backoff.next()
                // Sleep no further than the SVID's expiry, so workloads hear of it when it happens.
                let untilExpiry = leaf.notValidAfter.timeIntervalSinceNow
                _ = await wakeup.sleep(for: untilExpiry > 0 ? min(delay, .seconds(untilExpiry)) : delay)
            }
        }
    }

    /// The identity watch loop: ends when the poller refuses the identity (or on shutdown).
    public func watch() async {
        while !Task.isCancelled, revocation.withLock({ $0 }) == nil {
            guard state.hasIdentity else {
                try? await Task.sleep(for: .seconds(5))
                continue
            }
            if let reason = await IdentityWatch(state: state, logger: logger).run() { refused(reason) }
        }
    }

    /// The poller refused the identity (a renewal or the watch said so): moved aside, workloads told, the
    /// renewal loop woken to stop.
    func refused(_ reason: String) {
        let first = revocation.withLock { value in
            defer { value = value ?? reason }
            return value == nil
        }
        guard first else { return }
        logger.error("the poller refused this identity; it is no longer used", metadata: ["reason": "\(reason)"])
        try? FileManager.default.moveItem(
            atPath: state.identityDirectory,
            toPath: state.identityDirectory + ".revoked-\(Int(Date().timeIntervalSince1970))")
        publish(.revoked(reason))
        wakeup.wake()
    }

    /// Hands the identity on disk to the Workload API when it is new, or says it expired.
    private func publishHeld(_ leaf: Certificate) {
        guard let workload else { return }
        if leaf.notValidAfter <= Date() {
            publish(
                .unavailable(
                    "the SVID expired at \(leaf.notValidAfter.formatted(.iso8601)) and the poller has not renewed it"))
            return
        }
        if case .serving(let held) = workload.current, held.serial == leaf.serialText { return }
        do {
            publish(.serving(try WorkloadSVID.load(from: state)))
        } catch {
            logger.error("cannot serve the identity to workloads", metadata: ["error": "\(error)"])
            publish(.unavailable("the agent cannot read its identity"))
        }
    }

    private func publish(_ material: WorkloadMaterial) { workload?.publish(material) }
}

/// What `muster-agent status` reports: the identity, its lifetime, and whether the poller answers.
public enum AgentStatus {
    public static func read(state: AgentState, timeout: Duration = .seconds(5)) async -> (
        lines: [String], reachable: Bool
    ) {
        let workload =
            WorkloadStatus.read(state: state).map { status in
                "workload:  \(status.state) on \(status.socket), \(status.streams) open stream(s)"
                    + (status.state == "serving" ? "" : " (\(status.detail))")
            } ?? "workload:  not served (no muster-agent run with the Workload API for \(state.directory))"
        guard let config = try? state.config(), let leaf = try? state.leaf(), (try? state.identity()) != nil
        else {
            return (["identity:  none in \(state.directory) (run muster-agent install or join)", workload], false)
        }
        var lines = [
            "identity:  \(config.spiffeID)",
            "svid:      serial \(leaf.serialText), until \(leaf.notValidAfter.formatted(.iso8601))\(leaf.notValidAfter <= Date() ? " (EXPIRED)" : "")",
            "poller:    \(config.poller) (\(config.pollerID), pinned \(config.caPin))",
            "selectors: \(config.selectors.map { $0.isEmpty ? "none (only the agent's own uid)" : $0.joined(separator: ", ") } ?? "not known yet (filled in at the next renewal)")",
            workload,
        ]
        do {
            let channel = try AgentOnboarding.pollerChannel(state: state)
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
