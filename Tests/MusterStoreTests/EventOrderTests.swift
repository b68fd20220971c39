import Foundation
import MusterConcurrency
import Testing

@testable import MusterStore

@Suite("events commit in id order")
struct EventOrderTests {
    /// A reader that has passed event id N must never later find a smaller id: a transaction that appended an
    /// event holds every other event-writing transaction back until it commits, so ids commit in order. On
    /// PostgreSQL this is the advisory lock inside `muster_append_event`; on SQLite the single writer.
    @Test("a second event transaction waits for the first one's commit", arguments: Backend.available)
    func secondWaitsForFirst(backend: Backend) async throws {
        let store = try await backend.makeStore()
        let replica = backend.sibling(of: store)
        let first = await Self.holdEventTransaction(on: store)
        let secondCommitted = OneShot<Void>()
        let second = Task {
            try await replica.transaction { [isPostgres = replica.isPostgres] sql in
                try await Store.append(
                    audit: Self.audit, event: EventRecord(at: 2, type: "test.second", subject: "b", payload: "{}"),
                    in: sql, isPostgres: isPostgres)
            }
            secondCommitted.fulfil(())
        }
        // While the first is open the second cannot commit, on another connection or another replica.
        #expect(await secondCommitted.wait(timeout: .milliseconds(300)) == nil)
        try await first.commit()
        try await second.value
        let events = try await store.events(after: 0, limit: 10).filter { $0.type.hasPrefix("test.") }
        #expect(events.map(\.type) == ["test.first", "test.second"])
        #expect((events.first?.id ?? 0) < (events.last?.id ?? 0))
        await replica.shutdown()
        await store.shutdown()
    }

    /// The same for a group of pulls, whose events `muster_pull_packages` appends on PostgreSQL in one call: it must
    /// take the same lock, or its events could commit before an earlier id.
    @Test("a group of pulls waits for an open event transaction", arguments: Backend.available)
    func pullsWaitForFirst(backend: Backend) async throws {
        let h = try Harness(store: try await backend.makeStore())
        try await h.poller()
        let record = try #require(try await h.store.package(id: try await h.agent("a1").id))
        let replica = backend.sibling(of: h.store)
        let first = await Self.holdEventTransaction(on: h.store)
        let pulled = OneShot<Void>()
        let pull = PulledPackage(
            created: record, at: 2,
            audit: AuditRecord(
                at: 2, actor: "poller:edge-1", sourceIP: nil, action: "package.pull", targetType: "package",
                targetID: record.id)
        ) { EventRecord(at: 2, type: "test.pulled", subject: $0.id, payload: "{}") }
        let second = Task {
            let moved = try await replica.markPulledTogether([pull], at: 2)
            pulled.fulfil(())
            return moved
        }
        #expect(await pulled.wait(timeout: .milliseconds(300)) == nil)
        try await first.commit()
        #expect(try await second.value.map(\.id) == [record.id])
        let events = try await h.store.events(after: 0, limit: 10).filter { $0.type.hasPrefix("test.") }
        #expect(events.map(\.type) == ["test.first", "test.pulled"])
        #expect((events.first?.id ?? 0) < (events.last?.id ?? 0))
        await replica.shutdown()
        await h.store.shutdown()
    }

    static let audit = AuditRecord(
        at: 1, actor: "test", sourceIP: nil, action: "test.event", targetType: "test", targetID: "t")

    /// An event transaction left open on `store`: it has appended a `test.first` event and commits when told to.
    struct HeldTransaction {
        let task: Task<Void, any Error>
        let release: OneShot<Void>

        /// Lets the transaction commit, and waits until it has.
        func commit() async throws {
            release.fulfil(())
            try await task.value
        }
    }

    /// Opens an event transaction on `store` and returns once its event is appended, the transaction still open.
    static func holdEventTransaction(on store: Store) async -> HeldTransaction {
        let appended = OneShot<Void>()
        let release = OneShot<Void>()
        let task = Task {
            try await store.transaction { [isPostgres = store.isPostgres] sql in
                try await Store.append(
                    audit: audit, event: EventRecord(at: 1, type: "test.first", subject: "a", payload: "{}"), in: sql,
                    isPostgres: isPostgres)
                appended.fulfil(())
                await release.value
            }
        }
        await appended.value
        return HeldTransaction(task: task, release: release)
    }
}
