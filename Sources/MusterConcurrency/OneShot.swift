/// A value that arrives once, later: any number of tasks await it, each optionally with a timeout.
/// `OneShot<Void>` is an event that fires once. Later `fulfil` calls are ignored.
public final class OneShot<Value: Sendable>: Sendable {
    private struct State {
        var value: Value?
        var waiters: [UInt64: CheckedContinuation<Value?, Never>] = [:]
        var nextID: UInt64 = 0
    }

    private let state = LockedValue(State())

    public init() {}

    /// Hands `value` to every waiter, now and later; false if a value had arrived already.
    @discardableResult
    public func fulfil(_ value: Value) -> Bool {
        let waiters: [CheckedContinuation<Value?, Never>]? = state.withLock { state in
            guard state.value == nil else { return nil }
            state.value = value
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        guard let waiters else { return false }
        for waiter in waiters { waiter.resume(returning: value) }
        return true
    }

    /// The value once it arrives.
    public var value: Value {
        get async {
            // Without a timeout the wait ends only with a value.
            await wait(timeout: nil)!
        }
    }

    /// The value, or nil when `timeout` passed first.
    public func wait(timeout: Duration?) async -> Value? {
        let timer = LockedValue<Task<Void, Never>?>(nil)
        defer { timer.withLock { $0?.cancel() } }
        return await withCheckedContinuation { continuation in
            let registered: (id: UInt64?, ready: Value?) = state.withLock { state in
                if let value = state.value { return (nil, value) }
                defer { state.nextID += 1 }
                state.waiters[state.nextID] = continuation
                return (state.nextID, nil)
            }
            guard let id = registered.id else { return continuation.resume(returning: registered.ready) }
            guard let timeout else { return }
            timer.withLock {
                $0 = Task { [self] in
                    try? await Task.sleep(for: timeout)
                    state.withLock { $0.waiters.removeValue(forKey: id) }?.resume(returning: nil)
                }
            }
        }
    }
}

extension OneShot where Value == Void {
    /// Fires the event.
    public func fire() { fulfil(()) }
}
