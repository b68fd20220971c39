import Foundation
import Logging
import MusterConcurrency
import MusterStore
import ServiceLifecycle

/// Wakes event readers (package streams, SSE streams, the NATS publisher) when an event is committed: this
/// process rings it after its own commits, and on PostgreSQL a listener (LISTEN/NOTIFY) rings it for commits
/// of every Core replica. An idle reader therefore costs no query; each still reads again after
/// `safetyPoll` (30 s by default) in case a wake-up was lost (the listener reconnecting, say).
public final class EventHub: Service, Sendable {
    public let store: Store
    public let safetyPoll: Duration
    let logger: Logger
    private let state = LockedValue<(generation: UInt64, waiters: [UUID: CheckedContinuation<Void, Never>])>((0, [:]))

    public init(store: Store, safetyPoll: Duration = .seconds(30), logger: Logger = Logger(label: "muster.events")) {
        self.store = store
        self.safetyPoll = safetyPoll
        self.logger = logger
    }

    /// A count of rings so far: read it before looking for events, and `wait(since:)` returns at once if a
    /// ring came in between (no wake-up is lost to that race).
    public var generation: UInt64 { state.withLock { $0.generation } }

    /// Tells every waiting reader that new events may be there.
    public func ring() {
        let woken = state.withLock { state in
            state.generation &+= 1
            defer { state.waiters.removeAll() }
            return Array(state.waiters.values)
        }
        for waiter in woken { waiter.resume() }
    }

    /// Returns after a ring later than `generation`, after `timeout`, or on cancellation, whichever is first.
    public func wait(since generation: UInt64, timeout: Duration) async {
        let id = UUID()
        await withTaskGroup(of: Void.self) { group in
            group.addTask { [self] in
                // Registration and cancellation may race; whichever comes second resumes the continuation.
                await withTaskCancellationHandler {
                    await withCheckedContinuation { continuation in
                        let ready = state.withLock { state -> Bool in
                            if Task.isCancelled || state.generation != generation { return true }
                            state.waiters[id] = continuation
                            return false
                        }
                        if ready { continuation.resume() }
                    }
                } onCancel: {
                    state.withLock { $0.waiters.removeValue(forKey: id) }?.resume()
                }
            }
            group.addTask { try? await Task.sleep(for: timeout) }
            await group.next()
            group.cancelAll()
        }
    }

    /// Events after `cursor`, waiting until there is at least one (or the task is cancelled).
    public func next(after cursor: Int64, limit: Int = 100) async throws -> [EventRecord] {
        while !Task.isCancelled {
            let seen = generation
            let events = try await store.events(after: cursor, limit: limit)
            if !events.isEmpty { return events }
            await wait(since: seen, timeout: safetyPoll)
        }
        return []
    }

    /// On PostgreSQL: listens for other replicas' event commits until shutdown, reconnecting with backoff
    /// (one second) after a failure and ringing once each time the LISTEN is (re)established, so a commit made while it was
    /// down is read then. On SQLite there is nothing to listen to and this returns at once.
    public func run() async throws {
        guard store.canListenForEvents else { return }
        await cancelWhenGracefulShutdown { [self] in
            while !Task.isCancelled {
                do {
                    try await store.listenForEvents(listening: { [self] in ring() }, heard: { [self] in ring() })
                } catch {
                    logger.warning("event listener lost the database; retrying", metadata: ["error": "\(error)"])
                }
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }
}
