import Foundation
import Logging
import MusterConcurrency
import MusterStore
import ServiceLifecycle

/// One event that package streams carry, read from the events table and its subject looked up once for every
/// stream of this Core process.
public struct FeedEvent: Sendable {
    /// What the event is about, as it stood when the feed read it.
    public enum Subject: Sendable {
        case package(PackageRecord)
        /// An operator's decision; approved ones carry the identity's package.
        case enrollment(EnrollmentRecord, PackageRecord?)
    }

    public let id: Int64
    public let type: String
    public let subject: Subject

    /// The pollers whose streams this event concerns: a package's poller, a revoked poller itself, or the
    /// poller that relayed an enrollment.
    var pollers: [String] {
        switch subject {
        case .enrollment(let enrollment, _):
            return [enrollment.pollerName]
        case .package(let record):
            var names = record.pollerName.map { [$0] } ?? []
            if record.componentType == .poller, type == "package.revoked" { names.append(record.name) }
            return names
        }
    }
}

/// The one reader of the events table behind every poller package stream of this process: it reads each batch
/// once, looks each subject up once, and hands each event only to the streams of the pollers it concerns. A
/// stream therefore costs no query while nothing happens to its poller, however many other pollers are busy.
public final class PollerFeed: Service, Sendable {
    struct State {
        /// The last event id the feed has handed out; nil until it started.
        var position: Int64?
        var subscriptions: [String: [ObjectIdentifier: PollerSubscription]] = [:]
    }

    let events: EventHub
    let resolve: @Sendable (EventWithPackage) async throws -> FeedEvent?
    let metrics: CoreMetrics
    let logger: Logger
    let state = LockedValue(State())
    private let started = OneShot<Void>()

    init(
        events: EventHub, metrics: CoreMetrics, logger: Logger,
        resolve: @escaping @Sendable (EventWithPackage) async throws -> FeedEvent?
    ) {
        self.events = events
        self.metrics = metrics
        self.logger = logger
        self.resolve = resolve
    }

    /// Starts following a poller's events: every event after the returned subscription's `position` that
    /// concerns the poller arrives through it; the caller reads those up to `position` from the store.
    func subscribe(poller: String) async throws -> PollerSubscription {
        while await started.wait(timeout: .milliseconds(250)) == nil {
            try Task.checkCancellation()
        }
        let subscription = PollerSubscription(poller: poller, feed: self)
        state.withLock { state in
            subscription.reset(position: state.position ?? 0)
            state.subscriptions[poller, default: [:]][ObjectIdentifier(subscription)] = subscription
        }
        metrics.packageStreams.increment()
        return subscription
    }

    func unsubscribe(_ subscription: PollerSubscription) {
        let removed = state.withLock { state -> Bool in
            let poller = subscription.poller
            guard state.subscriptions[poller]?.removeValue(forKey: ObjectIdentifier(subscription)) != nil else {
                return false
            }
            if state.subscriptions[poller]?.isEmpty == true { state.subscriptions[poller] = nil }
            return true
        }
        if removed { metrics.packageStreams.decrement() }
    }

    /// Catches a subscription that fell behind up with the feed again: its buffer is dropped and its position is
    /// the feed's, so the stream reads what it missed from the store.
    func resynchronise(_ subscription: PollerSubscription) {
        state.withLock { state in subscription.reset(position: state.position ?? 0) }
    }

    /// Reads and hands out events until shutdown; a failed read or lookup is retried after a second, from the
    /// same place, so nothing is skipped while the database is away.
    public func run() async throws {
        await cancelWhenGracefulShutdown { [self] in
            var cursor: Int64?
            var caughtUp: UInt64?
            while !Task.isCancelled {
                do {
                    guard let position = cursor else {
                        let last = try await events.store.lastEventID()
                        state.withLock { $0.position = last }
                        cursor = last
                        started.fire()
                        continue
                    }
                    // Only the types streams carry: a package's Delivered transition, say, neither wakes nor costs
                    // the feed a read. Each package event comes with its package, in the same read.
                    let batch = try await events.nextWithPackages(
                        after: position, packageTypes: PackageService.packageEvents, caughtUp: &caughtUp)
                    metrics.feedReads.increment()
                    var items: [FeedEvent] = []
                    for row in batch {
                        if let item = try await resolve(row) { items.append(item) }
                    }
                    let last = batch.last?.event.id ?? position
                    hand(items, upTo: last)
                    cursor = last
                } catch  where !Task.isCancelled {
                    caughtUp = nil  // what was read may not have been handed out: read again, not wait
                    logger.warning("package feed cannot read events; retrying", metadata: ["error": "\(error)"])
                    try? await Task.sleep(for: .seconds(1))
                } catch {}
            }
        }
    }

    /// Gives each item to the subscriptions of its pollers and moves the position, in one step, so a new
    /// subscription either reads an event from the store or gets it from the feed, never both nor neither.
    func hand(_ items: [FeedEvent], upTo last: Int64) {
        var woken: [PollerSubscription] = []
        state.withLock { state in
            for item in items {
                for poller in item.pollers {
                    guard let group = state.subscriptions[poller] else { continue }
                    for subscription in group.values {
                        subscription.push(item)
                        woken.append(subscription)
                    }
                }
            }
            state.position = last
        }
        metrics.feedDeliveries.increment(by: Int64(woken.count))
        for subscription in woken { subscription.wakeup.wake() }
    }
}

/// One package stream's place in the feed: the events for its poller that arrived since it last looked, up to
/// `limit` of them; a stream that falls further behind is told so and catches up from the store.
final class PollerSubscription: Sendable {
    static let limit = 4096

    let poller: String
    let wakeup = Wakeup()
    private let feed: PollerFeed
    private let state = LockedValue<(items: [FeedEvent], overflowed: Bool, position: Int64)>(([], false, 0))

    init(poller: String, feed: PollerFeed) {
        self.poller = poller
        self.feed = feed
    }

    /// The feed's position when this subscription started (or was last resynchronised).
    var position: Int64 { state.withLock { $0.position } }

    func reset(position: Int64) {
        state.withLock { $0 = ([], false, position) }
    }

    func push(_ item: FeedEvent) {
        state.withLock { state in
            guard !state.overflowed else { return }
            if state.items.count >= Self.limit {
                state.items = []
                state.overflowed = true
            } else {
                state.items.append(item)
            }
        }
    }

    /// The events handed to this subscription since the last call, waiting until there is one; nil when it
    /// fell behind (call `resynchronise`), or an empty list when the task was cancelled.
    func next() async -> [FeedEvent]? {
        while !Task.isCancelled {
            let taken = state.withLock { state -> (items: [FeedEvent], overflowed: Bool) in
                defer { state.items = [] }
                return (state.items, state.overflowed)
            }
            if taken.overflowed { return nil }
            if !taken.items.isEmpty { return taken.items }
            _ = await wakeup.sleep(for: nil)
        }
        return []
    }

    func resynchronise() { feed.resynchronise(self) }

    func cancel() { feed.unsubscribe(self) }
}
