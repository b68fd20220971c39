import Foundation
import Logging
import MusterStore
import Testing

@testable import MusterCore

/// The package feed in process: which subscriptions an event reaches, the position a new subscription starts
/// from, and what a subscription that falls too far behind is told. Over a real SQLite store (empty).
@Suite("package feed")
struct PollerFeedTests {
    static func record(_ name: String, poller: String?, type: ComponentType = .agent) -> PackageRecord {
        PackageRecord(
            id: UUID().uuidString, name: name, componentType: type, site: "", pollerName: poller,
            spiffeID: "spiffe://feed.test/\(name)", selectors: "[]", tokenHash: "", ttlSeconds: 900, expiresAt: 0,
            status: .created, createdBy: "test", createdAt: 0, notes: "", metadata: "{}")
    }

    static func event(_ id: Int64, _ type: String, _ record: PackageRecord) -> FeedEvent {
        FeedEvent(id: id, type: type, subject: .package(record))
    }

    /// A feed over an empty store, started (its position read), for the duration of `body`.
    static func withFeed(_ body: (PollerFeed) async throws -> Void) async throws {
        let logger = Logger(label: "muster.feed.test")
        let path = FileManager.default.temporaryDirectory.appending(path: "muster-feed-\(UUID()).db").path
        let store = Store(location: .sqlite(path: path), connections: 1, logger: logger)
        try await store.migrate()
        let feed = PollerFeed(events: EventHub(store: store, logger: logger), metrics: CoreMetrics(), logger: logger) {
            _ in nil
        }
        let running = Task { try await feed.run() }
        defer { running.cancel() }
        try await body(feed)
        running.cancel()
        _ = await running.result
        await store.shutdown()
    }

    @Test("an event reaches the subscriptions of its poller only; a revoked poller's own streams hear of it")
    func targeting() async throws {
        try await Self.withFeed { feed in
            let one = try await feed.subscribe(poller: "p1")
            let alsoOne = try await feed.subscribe(poller: "p1")
            let two = try await feed.subscribe(poller: "p2")
            #expect(one.position == 0)
            feed.hand(
                [
                    Self.event(1, "package.created", Self.record("a", poller: "p1")),
                    Self.event(2, "package.revoked", Self.record("p2", poller: nil, type: .poller)),
                ],
                upTo: 2)
            #expect(await one.next()?.map(\.id) == [1])
            #expect(await alsoOne.next()?.map(\.id) == [1])
            #expect(await two.next()?.map(\.id) == [2])
            // A subscription made now starts where the feed is: it reads up to there from the store.
            let late = try await feed.subscribe(poller: "p1")
            #expect(late.position == 2)
            one.cancel()
            feed.hand([Self.event(3, "package.created", Self.record("b", poller: "p1"))], upTo: 3)
            #expect(await late.next()?.map(\.id) == [3])
            #expect(await alsoOne.next()?.map(\.id) == [3])
            #expect(feed.state.withLock { $0.subscriptions["p1"]?.count } == 2)
            for subscription in [alsoOne, two, late] { subscription.cancel() }
            #expect(feed.state.withLock { $0.subscriptions.isEmpty })
        }
    }

    @Test("a subscription more than its limit behind is told so, and resynchronised starts at the feed's position")
    func overflow() async throws {
        try await Self.withFeed { feed in
            let slow = try await feed.subscribe(poller: "p1")
            let record = Self.record("a", poller: "p1")
            let flood = (1...Int64(PollerSubscription.limit + 1)).map { Self.event($0, "package.created", record) }
            feed.hand(flood, upTo: Int64(flood.count))
            #expect(await slow.next() == nil)
            slow.resynchronise()
            #expect(slow.position == Int64(flood.count))
            feed.hand([Self.event(Int64(flood.count) + 1, "package.revoked", record)], upTo: Int64(flood.count) + 1)
            #expect(await slow.next()?.map(\.type) == ["package.revoked"])
            slow.cancel()
        }
    }
}
