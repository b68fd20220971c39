import MusterConcurrency
import MusterGRPC

/// Whether Core still recognises this poller. Once Core answers that the poller is revoked (or unknown), the
/// poller stops onboarding: joins and renewals are refused, Health says NOT_SERVING, the link to Core stops.
public final class PollerStanding: Sendable {
    private let revoked = LockedValue(false)
    let health: HealthService
    /// The agents' open identity watches, woken by a revocation of theirs or of this poller.
    let revocations = RevocationSignal()

    public init(health: HealthService) { self.health = health }

    public var isRevoked: Bool { revoked.withLock { $0 } }

    /// Marks the poller revoked; true the first time.
    @discardableResult
    func markRevoked() -> Bool {
        let first = revoked.withLock { value in
            defer { value = true }
            return !value
        }
        health.setStatus(.notServing, for: "muster.onboarding.v1.EdgeOnboarding")
        revocations.revokedEverything()
        return first
    }

    static let refusal = RPCError(
        code: .failedPrecondition, message: "this poller was revoked by Core and no longer onboards agents")
}
