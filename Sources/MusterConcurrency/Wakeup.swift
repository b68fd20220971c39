/// A sleep another task can cut short: `sleep(for:)` returns true when `wake()` was called since the last
/// sleep (or during it), false when the time passed or the sleeping task was cancelled. Wake-ups do not queue:
/// several before one sleep count once.
public final class Wakeup: Sendable {
    private let state = LockedValue<(pending: Bool, sleeper: OneShot<Void>?)>((false, nil))

    public init() {}

    public func wake() {
        let sleeper = state.withLock { value in
            value.pending = true
            return value.sleeper
        }
        sleeper?.fire()
    }

    /// With no duration the sleep lasts until a wake-up or cancellation (and holds no timer).
    public func sleep(for duration: Duration?) async -> Bool {
        let sleeper = OneShot<Void>()
        let already = state.withLock { value in
            if value.pending {
                value.pending = false
                return true
            }
            value.sleeper = sleeper
            return false
        }
        if already { return true }
        await withTaskCancellationHandler {
            _ = await sleeper.wait(timeout: duration)
        } onCancel: {
            sleeper.fire()
        }
        return state.withLock { value in
            defer { value = (false, nil) }
            return value.pending
        }
    }
}
