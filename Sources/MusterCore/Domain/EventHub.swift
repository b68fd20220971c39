import Foundation
import Logging
import MusterConcurrency
import MusterStore
import ServiceLifecycle

/// Wakes event readers (package streams, SSE streams, the NATS publisher) when an event is committed: this
/// process rings it after its own commits, and on PostgreSQL a listener (LISTEN/NOTIFY) rings it for commits
/// of every Core replica. An idle reader therefore costs no query; each still reads again after
/// `safetyPoll` (30 s by default) in case a wake-up was lost (the listener reconnecting, say).
///
/// A ring may say which event types were committed. A reader that waits for the `listed` types alone (the package
/// feed) then sleeps through rings of other types, such as the Delivered transition of every package a stream
/// sends, which would otherwise each cost it a read of the events table; a ring that names no type wakes everyone.
public final class EventHub: Service, Sendable {
    /// Which rings wake a reader.
    public enum Interest: Sendable {
        /// Every ring.
        case all
        /// Rings that name a `listed` type, or no type.
        case listed
    }

    struct State {
        var generation: UInt64 = 0
        var listedGeneration: UInt64 = 0
        var waiters: [UUID: (interest: Interest, continuation: CheckedContinuation<Void, Never>)] = [:]
    }

    public let store: Store
    public let safetyPoll: Duration
    /// The event types that wake readers of `.listed`.
    public let listed: Set<String>
    let logger: Logger
    private let state = LockedValue(State())

    public init(
        store: Store, safetyPoll: Duration = .seconds(30), listed: Set<String> = [],
        logger: Logger = Logger(label: "muster.events")
    ) {
        self.store = store
        self.safetyPoll = safetyPoll
        self.listed = listed
        self.logger = logger
    }

    /// A count of the rings that wake a reader of `interest` so far: read it before looking for events, and
    /// `wait(since:for:timeout:)` returns at once if such a ring came in between (no wake-up is lost to that race).
    public func generation(for interest: Interest = .all) -> UInt64 {
        state.withLock { interest == .all ? $0.generation : $0.listedGeneration }
    }

    /// Tells every waiting reader that new events may be there.
    public func ring() { ring(types: nil) }

    /// Tells the readers that events of `types` were committed: all readers of `.all`, and those of `.listed` if a
    /// type is listed; nil (types not known) wakes every reader.
    public func ring(types: [String]?) {
        let woken = state.withLock { state in
            let wakesListed = types.map { $0.contains(where: listed.contains) } ?? true
            state.generation &+= 1
            if wakesListed { state.listedGeneration &+= 1 }
            var woken: [CheckedContinuation<Void, Never>] = []
            for (id, waiter) in state.waiters where wakesListed || waiter.interest == .all {
                woken.append(waiter.continuation)
                state.waiters[id] = nil
            }
            return woken
        }
        for waiter in woken { waiter.resume() }
    }

    /// Returns after a ring for `interest` later than `generation`, after `timeout`, or on cancellation, whichever
    /// is first.
    public func wait(since generation: UInt64, for interest: Interest = .all, timeout: Duration) async {
        let id = UUID()
        await withTaskGroup(of: Void.self) { group in
            group.addTask { [self] in
                // Registration and cancellation may race; whichever comes second resumes the continuation.
                await withTaskCancellationHandler {
                    await withCheckedContinuation { continuation in
                        let ready = state.withLock { state -> Bool in
                            let now = interest == .all ? state.generation : state.listedGeneration
                            if Task.isCancelled || now != generation { return true }
                            state.waiters[id] = (interest, continuation)
                            return false
                        }
                        if ready { continuation.resume() }
                    }
                } onCancel: {
                    state.withLock { $0.waiters.removeValue(forKey: id) }?.continuation.resume()
                }
            }
            group.addTask { try? await Task.sleep(for: timeout) }
            await group.next()
            group.cancelAll()
        }
    }

    /// Events after `cursor`, of every type, waiting until there is at least one (or the task is cancelled), for a
    /// reader that calls it in a loop and keeps `caughtUp` between calls (nil to start, and after it moved its cursor
    /// by other means): after a batch shorter than `limit` the reader had every event there was, so the next call
    /// waits for a ring that came after that read began instead of reading again at once to find nothing.
    public func next(after cursor: Int64, limit: Int = 100, caughtUp: inout UInt64?) async throws -> [EventRecord] {
        try await next(for: .all, limit: limit, caughtUp: &caughtUp) { [store] _ in
            try await store.events(after: cursor, limit: limit)
        }
    }

    /// The same for `.listed`, each event with the package it is about when its type is one of `packageTypes`, read
    /// together (`Store.eventsWithPackages`).
    public func nextWithPackages(
        after cursor: Int64, limit: Int = 100, packageTypes: Set<String>, caughtUp: inout UInt64?
    ) async throws -> [EventWithPackage] {
        try await next(for: .listed, limit: limit, caughtUp: &caughtUp) { [store] types in
            try await store.eventsWithPackages(after: cursor, limit: limit, types: types, packageTypes: packageTypes)
        }
    }

    /// What `read` returns for the types of `interest` (nil: every type), once it returns something, reading again
    /// after each ring for `interest` and after each `safetyPoll`. `caughtUp` is the ring count from before the last
    /// read that found fewer than `limit`: every event committed after that read began rings after it, so there is
    /// nothing to read until such a ring (or the safety poll).
    private func next<Item>(
        for interest: Interest, limit: Int, caughtUp: inout UInt64?, read: (Set<String>?) async throws -> [Item]
    ) async throws -> [Item] {
        while !Task.isCancelled {
            if let seen = caughtUp { await wait(since: seen, for: interest, timeout: safetyPoll) }
            let seen = generation(for: interest)
            let items = try await read(interest == .listed ? listed : nil)
            caughtUp = items.count < limit ? seen : nil
            if !items.isEmpty { return items }
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
                    try await store.listenForEvents(
                        listening: { [self] in ring() }, heard: { [self] types in ring(types: types) })
                } catch {
                    logger.warning("event listener lost the database; retrying", metadata: ["error": "\(error)"])
                }
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }
}
