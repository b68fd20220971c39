import Foundation
import MusterConcurrency
import MusterStore

/// Wakes event readers (SSE streams, the NATS publisher) when this process commits an event; readers also
/// poll, so events committed by other Core replicas arrive within `pollInterval`.
public final class EventHub: Sendable {
    public let store: Store
    public let pollInterval: Duration
    private let waiters = LockedValue<[UUID: CheckedContinuation<Void, Never>]>([:])

    public init(store: Store, pollInterval: Duration = .milliseconds(500)) {
        self.store = store
        self.pollInterval = pollInterval
    }

    /// Tells every waiting reader that new events may be there.
    public func ring() {
        let woken = waiters.withLock { waiters in
            defer { waiters.removeAll() }
            return Array(waiters.values)
        }
        for waiter in woken { waiter.resume() }
    }

    /// Returns after a ring or after `pollInterval`, whichever comes first.
    public func wait() async {
        let id = UUID()
        let interval = pollInterval
        await withTaskGroup(of: Void.self) { group in
            group.addTask { [self] in
                // Registration and cancellation may race; whichever comes second resumes the continuation.
                await withTaskCancellationHandler {
                    await withCheckedContinuation { continuation in
                        let cancelled = waiters.withLock { waiters -> Bool in
                            if Task.isCancelled { return true }
                            waiters[id] = continuation
                            return false
                        }
                        if cancelled { continuation.resume() }
                    }
                } onCancel: {
                    waiters.withLock { $0.removeValue(forKey: id) }?.resume()
                }
            }
            group.addTask { try? await Task.sleep(for: interval) }
            await group.next()
            group.cancelAll()
        }
    }

    /// Events after `cursor`, waiting until there is at least one (or the task is cancelled).
    public func next(after cursor: Int64, limit: Int = 100) async throws -> [EventRecord] {
        while !Task.isCancelled {
            let events = try await store.events(after: cursor, limit: limit)
            if !events.isEmpty { return events }
            await wait()
        }
        return []
    }
}
