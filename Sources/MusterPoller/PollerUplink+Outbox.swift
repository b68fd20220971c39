import Crypto
import Foundation
import MusterEdge
import MusterGRPC
import MusterIdentity
import MusterProto
import X509

extension PollerUplink {
    /// The least time between two reports: how long an activation may wait for others to join it.
    static let reportGap = Duration.milliseconds(50)

    public func outboxLoop() async {
        var backoff = Backoff()
        var lastReport = ContinuousClock.now - heartbeat
        var first = true
        while !Task.isCancelled, !standing.isRevoked {
            // The first pass sends what a previous run left queued. An empty report (the heartbeat) is due only
            // while the package stream is not live: a live stream is this poller's contact at Core.
            let due =
                outbox.take() || first || (!streamIsLive && ContinuousClock.now - lastReport >= heartbeat)
            first = false
            guard due else {
                try? await Task.sleep(for: .milliseconds(100))
                continue
            }
            do {
                try await flush()
                lastReport = .now
                backoff.reset()
                // Activations that arrive together (a site's agents joining at once) go to Core in one report,
                // not one report each.
                try? await Task.sleep(for: Self.reportGap)
            } catch {
                if await stops(after: error, "cannot report activations to Core; kept in the outbox", backoff: &backoff)
                {
                    return
                }
                outbox.ring()
            }
        }
    }

    /// Sends the outbox (activations, and refused joins for Core's audit log) in batches until it is empty; an
    /// empty outbox sends one empty report, the heartbeat.
    func flush() async throws {
        let channel = try channel()
        repeat {
            let batch = try await cache.outbox(limit: 100)
            let refusals = try await cache.refusals(limit: 100)
            var request = Muster_Onboarding_V1_ReportActivationsRequest()
            request.refusals = refusals.map { item in
                var refusal = Muster_Onboarding_V1_JoinRefusal()
                refusal.packageID = item.packageID
                refusal.reason = item.reason
                refusal.sourceAddress = item.sourceAddress
                refusal.atUnixMs = item.at
                return refusal
            }
            request.activations = batch.map { item in
                var activation = Muster_Onboarding_V1_Activation()
                activation.packageID = item.packageID
                activation.spiffeID = item.spiffeID
                activation.sourceAddress = item.sourceAddress
                activation.activatedAtUnixMs = item.activatedAt
                activation.serial = item.serial
                return activation
            }
            let response = try await channel.unary(
                "/muster.onboarding.v1.CoreOnboarding/ReportActivations", request,
                as: Muster_Onboarding_V1_ReportActivationsResponse.self, options: CallOptions(timeout: .seconds(15)))
            let accepted = Set(response.accepted)
            for item in batch where !accepted.contains(item.packageID) {
                logger.error(
                    "Core refused an activation for good (see Core's audit log); dropped",
                    metadata: ["package": "\(item.packageID)"])
            }
            // Accepted and refused-for-good both leave the outbox; a failed call leaves everything in it.
            try await cache.removeFromOutbox(batch.map(\.packageID))
            if let last = refusals.last?.id { try await cache.removeRefusals(through: last) }
            if !batch.isEmpty { logger.info("activations reported to Core", metadata: ["count": "\(accepted.count)"]) }
            let enrollments = try await relayEnrollments(on: channel)
            if batch.count < 100 && refusals.count < 100 && enrollments < 100 { return }
        } while !Task.isCancelled
    }

    /// Relays waiting enrollment requests (at most 100) to Core; returns how many were sent.
    func relayEnrollments(on channel: GRPCChannel) async throws -> Int {
        let waiting = try await cache.unrelayedEnrollments(limit: 100)
        guard !waiting.isEmpty else { return 0 }
        var request = Muster_Onboarding_V1_RelayEnrollmentsRequest()
        request.enrollments = waiting.map { item in
            var submission = Muster_Onboarding_V1_EnrollmentSubmission()
            submission.id = item.id
            submission.componentType = item.componentType
            submission.requestedName = item.requestedName
            if let facts = try? JSONDecoder().decode(EnrollmentFacts.self, from: Data(item.claimed.utf8)) {
                submission.claimed = facts.proto
            }
            submission.csr = item.csr
            submission.sourceAddress = item.sourceAddress
            submission.receivedAtUnixMs = item.receivedAt
            return submission
        }
        let response = try await channel.unary(
            "/muster.onboarding.v1.CoreOnboarding/RelayEnrollments", request,
            as: Muster_Onboarding_V1_RelayEnrollmentsResponse.self, options: CallOptions(timeout: .seconds(15)))
        let accepted = Set(response.accepted)
        let refused = waiting.map(\.id).filter { !accepted.contains($0) }
        for id in refused {
            logger.error(
                "Core refused an enrollment request for good (see Core's audit log)", metadata: ["enrollment": "\(id)"])
        }
        try await cache.markRelayed(
            accepted: Array(accepted), refused: refused, refusal: "Core refused the request (see its audit log)")
        logger.info("enrollment requests relayed to Core", metadata: ["count": "\(accepted.count)"])
        return waiting.count
    }
}
