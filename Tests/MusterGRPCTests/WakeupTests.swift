import Foundation
import MusterConcurrency
import Testing

/// `Wakeup` carries revocations to the poller's identity watches and to the agent's renewal loop: a wake-up must
/// never be lost, and shutdown (cancellation) must not wait out the sleep.
@Suite("a sleep another task can cut short")
struct WakeupTests {
    @Test("a wake before the sleep is kept; several count once")
    func early() async {
        let wakeup = Wakeup()
        wakeup.wake()
        wakeup.wake()
        #expect(await wakeup.sleep(for: .seconds(30)))
        #expect(await wakeup.sleep(for: .milliseconds(50)) == false)
    }

    @Test("a wake during the sleep ends it at once")
    func during() async {
        let wakeup = Wakeup()
        let start = ContinuousClock.now
        Task {
            try? await Task.sleep(for: .milliseconds(100))
            wakeup.wake()
        }
        #expect(await wakeup.sleep(for: .seconds(30)))
        #expect(ContinuousClock.now - start < .seconds(20), "the 30 s sleep was not cut short")
    }

    @Test("cancellation ends the sleep promptly, reporting no wake")
    func cancelled() async {
        let wakeup = Wakeup()
        let start = ContinuousClock.now
        let sleeper = Task { await wakeup.sleep(for: .seconds(30)) }
        try? await Task.sleep(for: .milliseconds(100))
        sleeper.cancel()
        #expect(await sleeper.value == false)
        #expect(ContinuousClock.now - start < .seconds(20), "the 30 s sleep was not cut short")
    }

    @Test("with no duration the sleep lasts until a wake, or until cancellation")
    func untimed() async {
        let wakeup = Wakeup()
        Task {
            try? await Task.sleep(for: .milliseconds(100))
            wakeup.wake()
        }
        #expect(await wakeup.sleep(for: nil))
        let sleeper = Task { await wakeup.sleep(for: nil) }
        try? await Task.sleep(for: .milliseconds(100))
        sleeper.cancel()
        #expect(await sleeper.value == false)
    }
}
