import Foundation
import Logging
import MusterConcurrency
import Testing

@testable import MusterCore
@testable import MusterStore

/// Who a ring wakes: a reader of every event wakes for any ring; the package feed, which waits for the types
/// streams carry, sleeps through rings of other types (each package's Delivered transition, say) and so does not
/// read the events table for them. Over a real SQLite store.
@Suite("event hub: rings by type")
struct EventHubTests {
    static let logger = Logger(label: "muster.hub.test")

    static func store() async throws -> Store {
        let path = FileManager.default.temporaryDirectory.appending(path: "muster-hub-\(UUID()).db").path
        let store = Store(location: .sqlite(path: path), connections: 1, logger: logger)
        try await store.migrate()
        return store
    }

    /// Appends one event without ringing, as another replica's commit whose notification has not come yet.
    static func append(_ type: String, to store: Store) async throws -> Int64 {
        try await store.transaction { sql in
            try await Store.append(
                event: EventRecord(at: 1, type: type, subject: "p", payload: "{}"), in: sql, isPostgres: false)
        }
        return try await store.lastEventID()
    }

    @Test("a ring naming only other types wakes readers of every event, not readers of the listed types")
    func listedReadersSleepThroughOtherTypes() async throws {
        let store = try await Self.store()
        let hub = EventHub(store: store, listed: ["t.created"], logger: Self.logger)
        let (all, listed) = (hub.generation(), hub.generation(for: .listed))
        let allWoken = OneShot<Void>()
        let listedWoken = OneShot<Void>()
        let waiters = [
            Task {
                await hub.wait(since: all, for: .all, timeout: .seconds(60))
                allWoken.fire()
            },
            Task {
                await hub.wait(since: listed, for: .listed, timeout: .seconds(60))
                listedWoken.fire()
            },
        ]
        hub.ring(types: ["t.delivered"])
        #expect(await allWoken.wait(timeout: .seconds(10)) != nil)
        #expect(await listedWoken.wait(timeout: .milliseconds(300)) == nil)
        #expect(hub.generation(for: .listed) == listed)
        hub.ring(types: ["t.delivered", "t.created"])
        #expect(await listedWoken.wait(timeout: .seconds(10)) != nil)
        // A ring that names no type (an older replica's notification, the listener reconnecting) wakes everyone.
        hub.ring()
        #expect(hub.generation(for: .listed) == listed + 2)
        for waiter in waiters { waiter.cancel() }
        await store.shutdown()
    }

    @Test("after a short batch the next read waits for a ring that came after that read began")
    func caughtUpReaderWaitsForARing() async throws {
        let store = try await Self.store()
        let hub = EventHub(store: store, listed: ["t.created"], logger: Self.logger)
        let first = try await Self.append("t.created", to: store)
        var caughtUp: UInt64?
        let batch = try await hub.nextWithPackages(after: 0, packageTypes: [], caughtUp: &caughtUp)
        #expect(batch.map(\.event.id) == [first])
        #expect(caughtUp != nil)
        // Committed without a ring yet (another replica's commit, its notification on the way): the reader had every
        // event there was, so it does not read again until the ring comes.
        let second = try await Self.append("t.created", to: store)
        let read = OneShot<[Int64?]>()
        let reader = Task { [caughtUp] in
            var position = caughtUp
            read.fulfil(
                try await hub.nextWithPackages(after: first, packageTypes: [], caughtUp: &position).map(\.event.id))
        }
        #expect(await read.wait(timeout: .milliseconds(300)) == nil)
        hub.ring(types: ["t.created"])
        #expect(await read.wait(timeout: .seconds(10)) == [second])
        try await reader.value
        // A batch as long as the limit may not be all there is: the next call reads at once.
        _ = try await Self.append("t.created", to: store)
        var full: UInt64?
        #expect(try await hub.nextWithPackages(after: 0, limit: 2, packageTypes: [], caughtUp: &full).count == 2)
        #expect(full == nil)
        await store.shutdown()
    }

    @Test("the package feed neither wakes for nor reads the events streams do not carry")
    func feedReadsStreamedTypesOnly() async throws {
        let store = try await Self.store()
        let hub = EventHub(store: store, listed: PackageService.streamedEvents, logger: Self.logger)
        let record = PollerFeedTests.record("a", poller: "p1")
        let feed = PollerFeed(events: hub, metrics: CoreMetrics(), logger: Self.logger) { row in
            FeedEvent(id: row.event.id ?? 0, type: row.event.type, subject: .package(record))
        }
        let running = Task { try await feed.run() }
        let subscription = try await feed.subscribe(poller: "p1")
        let start = subscription.position
        // A created event is committed but its ring has not come; a Delivered ring does not make the feed look.
        let created = try await Self.append("package.created", to: store)
        hub.ring(types: ["package.delivered"])
        try await Task.sleep(for: .milliseconds(300))
        #expect(feed.state.withLock { $0.position } == start)
        hub.ring(types: ["package.created"])
        #expect(await subscription.next()?.map(\.id) == [created])
        // Woken for any reason, the feed reads past the types it does not carry without handing them out.
        _ = try await Self.append("package.delivered", to: store)
        let revoked = try await Self.append("package.revoked", to: store)
        let delivered = try await Self.append("package.delivered", to: store)
        hub.ring()
        #expect(await subscription.next()?.map(\.id) == [revoked])
        #expect(feed.state.withLock { $0.position } == revoked)
        #expect(delivered > revoked)
        subscription.cancel()
        running.cancel()
        _ = await running.result
        await store.shutdown()
    }
}
