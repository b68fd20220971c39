import MusterConcurrency

/// Wakes the agents' open identity watches (`WatchIdentity`) when the poller learns that Core revoked their
/// package, or that Core revoked the poller itself, so the agents' workloads hear of it within seconds instead
/// of at the next renewal. Keyed by SPIFFE ID; a watch re-reads the cache when woken, so a wake-up is only a hint.
public final class RevocationSignal: Sendable {
    private struct State {
        var watches: [String: [UInt64: Wakeup]] = [:]
        var nextID: UInt64 = 0
        var everything = false
    }

    private let state = LockedValue(State())

    public init() {}

    /// Registers a watch for `spiffeID` for the duration of `body`; registered before `body` reads the cache,
    /// so a revocation applied in between is not missed.
    func watching<R: Sendable>(_ spiffeID: String, _ body: (Wakeup) async throws -> R) async rethrows -> R {
        let watch = Wakeup()
        let (id, everything) = state.withLock { state in
            defer { state.nextID += 1 }
            state.watches[spiffeID, default: [:]][state.nextID] = watch
            return (state.nextID, state.everything)
        }
        if everything { watch.wake() }
        defer {
            state.withLock { state in
                state.watches[spiffeID]?.removeValue(forKey: id)
                if state.watches[spiffeID]?.isEmpty == true { state.watches[spiffeID] = nil }
            }
        }
        return try await body(watch)
    }

    /// Core revoked the package of `spiffeID`.
    func revoked(_ spiffeID: String) {
        for watch in state.withLock({ Array(($0.watches[spiffeID] ?? [:]).values) }) { watch.wake() }
    }

    /// Core revoked this poller: every identity it issued stops being renewed.
    func revokedEverything() {
        let all = state.withLock { state in
            state.everything = true
            return state.watches.values.flatMap(\.values)
        }
        for watch in all { watch.wake() }
    }
}
