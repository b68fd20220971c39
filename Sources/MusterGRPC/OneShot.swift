
/// An event that fires once; tasks wait for it, optionally with a timeout.
final class OneShot: Sendable {
    private let state = LockedValue<(fired: Bool, waiters: [UInt64: CheckedContinuation<Bool, Never>], nextID: UInt64)>((false, [:], 0))

    func fire() {
        let waiters = state.withLock { state in
            state.fired = true
            defer { state.waiters = [:] }
            return state.waiters
        }
        for waiter in waiters.values { waiter.resume(returning: true) }
    }

    /// True when the event fired, false when `timeout` passed first.
    func wait(timeout: Duration?) async -> Bool {
        let timer = LockedValue<Task<Void, Never>?>(nil)
        defer { timer.withLock { $0?.cancel() } }
        return await withCheckedContinuation { continuation in
            let id: UInt64? = state.withLock { state in
                guard state.fired == false else { return nil }
                defer { state.nextID += 1 }
                state.waiters[state.nextID] = continuation
                return state.nextID
            }
            guard let id else { return continuation.resume(returning: true) }
            guard let timeout else { return }
            timer.withLock {
                $0 = Task { [self] in
                    try? await Task.sleep(for: timeout)
                    state.withLock { $0.waiters.removeValue(forKey: id) }?.resume(returning: false)
                }
            }
        }
    }
}
