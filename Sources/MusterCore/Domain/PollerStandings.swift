import MusterConcurrency

/// The poller SVIDs Core recently found current, so that a poller's heartbeat (an empty report, every 30 s on
/// its open connection) does not read the store each time. Only heartbeats use it: they change nothing but the
/// poller's last contact. Every call that changes state reads the store. An entry is trusted for at most `ttl`;
/// any event about a poller's own package (created or revoked, on whichever replica: every replica's package
/// feed reads every event) forgets that poller's entries, and so does a revocation made by this process. Only
/// verdicts that admit a call are kept; refusals are read, and audited, every time.
final class PollerStandings: Sendable {
    private struct State {
        /// poller name → SVID serial → (its SPIFFE ID, trusted until).
        var entries: [String: [String: (spiffeID: String, until: ContinuousClock.Instant)]] = [:]
        /// Bumped by every `forget`: a verdict read before a forget is not kept after it.
        var generation: UInt64 = 0
    }

    /// Most SVIDs kept for one poller (its current one, and the one before a renewal while connections move).
    static let serialsPerPoller = 4

    private let state = LockedValue(State())
    let ttl: Duration

    init(ttl: Duration = .seconds(120)) { self.ttl = ttl }

    /// Whether `serial` of `poller`, with `spiffeID`, was found current less than `ttl` ago and not forgotten since.
    func admits(_ poller: String, serial: String, spiffeID: String) -> Bool {
        let now = ContinuousClock.now
        return state.withLock { state in
            guard let entry = state.entries[poller]?[serial] else { return false }
            guard entry.until > now else {
                state.entries[poller]?[serial] = nil
                return false
            }
            return entry.spiffeID == spiffeID
        }
    }

    /// The generation to hand to `remember` after reading the store.
    var generation: UInt64 { state.withLock { $0.generation } }

    /// Keeps a verdict read from the store when that read began at `generation`, unless a forget came since.
    func remember(_ poller: String, serial: String, spiffeID: String, readAt generation: UInt64) {
        let until = ContinuousClock.now + ttl
        state.withLock { state in
            guard state.generation == generation else { return }
            var serials = state.entries[poller] ?? [:]
            if serials[serial] == nil, serials.count >= Self.serialsPerPoller,
                let oldest = serials.min(by: { $0.value.until < $1.value.until })?.key
            {
                serials[oldest] = nil
            }
            serials[serial] = (spiffeID, until)
            state.entries[poller] = serials
        }
    }

    /// Forgets every verdict about `poller`, and any read still in flight.
    func forget(_ poller: String) {
        state.withLock { state in
            state.entries[poller] = nil
            state.generation &+= 1
        }
    }
}
