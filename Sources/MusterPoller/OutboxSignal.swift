import MusterConcurrency

/// Tells the outbox flusher there is something to send.
public final class OutboxSignal: Sendable {
    private let pending = LockedValue(false)
    public init() {}
    public func ring() { pending.withLock { $0 = true } }
    /// True once since the last ring.
    func take() -> Bool {
        pending.withLock { value in
            defer { value = false }
            return value
        }
    }
}
