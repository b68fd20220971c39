import Foundation
import MusterConcurrency
import Testing

@testable import MusterCore
@testable import MusterStore

/// What a reader can ask of the events table besides order: events of some types only, and on PostgreSQL, which
/// types a commit's notification names (so a replica's reader can sleep through the others).
@Suite("event types: filtered reads and named notifications")
struct EventNotifyTests {
    static func event(_ type: String, _ subject: String) -> EventRecord {
        EventRecord(at: 1, type: type, subject: subject, payload: "{}")
    }

    static func append(_ events: [EventRecord], to store: Store) async throws {
        try await store.transaction { [isPostgres = store.isPostgres] sql in
            try await Store.append(events: events, in: sql, isPostgres: isPostgres)
        }
    }

    @Test("a read of some types skips the others and keeps id order", arguments: Backend.available)
    func filteredRead(backend: Backend) async throws {
        let store = try await backend.makeStore()
        try await Self.append(
            [Self.event("t.kept", "a"), Self.event("t.skipped", "b"), Self.event("t.other", "c")], to: store)
        try await Self.append([Self.event("t.skipped", "d"), Self.event("t.kept", "e")], to: store)
        let all = try await store.events(after: 0, limit: 10).filter { $0.type.hasPrefix("t.") }
        #expect(all.map(\.subject) == ["a", "b", "c", "d", "e"])
        // Some types only (how the package feed reads), here with no package joined.
        let typed = { (after: Int64, types: Set<String>) in
            try await store.eventsWithPackages(after: after, limit: 10, types: types, packageTypes: []).map(\.event)
        }
        let some = try await typed(0, ["t.kept", "t.other"])
        #expect(some.map(\.subject) == ["a", "c", "e"])
        let after = try await typed(some[1].id ?? 0, ["t.kept", "t.other"])
        #expect(after.map(\.subject) == ["e"])
        #expect(try await typed(0, ["t.none"]).isEmpty)
        #expect(try await typed(0, []).isEmpty)
        await store.shutdown()
    }

    @Test(
        "events read with their packages: the same events, each package event with its row as it stands",
        arguments: Backend.available)
    func eventsWithPackages(backend: Backend) async throws {
        let h = try Harness(store: try await backend.makeStore())
        try await h.poller()
        let kept = try await h.agent("a1")
        let revoked = try await h.agent("a2")
        _ = try await h.packages.revoke(id: revoked.id, reason: nil, by: h.admin)
        try await Self.append([Self.event("t.other", kept.id)], to: h.store)
        let packageTypes: Set<String> = ["package.created", "package.revoked"]

        let rows = try await h.store.eventsWithPackages(after: 0, limit: 50, packageTypes: packageTypes)
        #expect(rows.map(\.event) == (try await h.store.events(after: 0, limit: 50)))
        for row in rows {
            // Joined by subject for the package types only: `t.other` names a package too, and gets none.
            #expect((row.package?.id) == (packageTypes.contains(row.event.type) ? row.event.subject : nil))
        }
        let created = rows.filter { $0.event.type == "package.created" }.compactMap(\.package)
        #expect(created.map(\.name) == ["edge-1", "a1", "a2"])
        // The row as it stands when read: a2's creation comes with a2 revoked.
        #expect(created.map(\.status) == [.created, .created, .revoked])

        let some = try await h.store.eventsWithPackages(
            after: 0, limit: 50, types: ["package.revoked", "t.other"], packageTypes: packageTypes)
        #expect(some.map(\.event.type) == ["package.revoked", "t.other"])
        #expect(some.map { $0.package?.id } == [revoked.id, nil])
        let limited = try await h.store.eventsWithPackages(after: 0, limit: 2, packageTypes: packageTypes)
        #expect(limited.map(\.event.id) == rows.prefix(2).map(\.event.id))
        let unjoined = try await h.store.eventsWithPackages(after: 0, limit: 50, packageTypes: [])
        #expect(unjoined.count == rows.count && unjoined.allSatisfy { $0.package == nil })
        #expect(
            try await h.store.eventsWithPackages(after: 0, limit: 50, types: [], packageTypes: packageTypes).isEmpty)
        await h.store.shutdown()
    }

    @Test("a commit's notification names every type it appended, once each")
    func namedNotifications() async throws {
        guard Backend.available.contains(.postgres) else { return }
        let store = try await Backend.postgres.makeStore()
        let listener = Backend.postgres.sibling(of: store)
        let heard = LockedValue<[[String]?]>([])
        let listening = OneShot<Void>()
        let allHeard = OneShot<Void>()
        let listen = Task {
            try await listener.listenForEvents(listening: { listening.fire() }) { types in
                let count = heard.withLock { heard in
                    heard.append(types)
                    return heard.count
                }
                if count == 3 { allHeard.fire() }
            }
        }
        await listening.value
        // One transaction of three events and two types, then one of a single event.
        try await Self.append(
            [Self.event("t.delivered", "a"), Self.event("t.delivered", "b"), Self.event("t.created", "c")], to: store)
        try await Self.append([Self.event("t.revoked", "d")], to: store)
        #expect(await allHeard.wait(timeout: .seconds(10)) != nil)
        listen.cancel()
        _ = await listen.result
        let names = heard.withLock { $0 }
        // PostgreSQL delivers a transaction's notifications together at its commit.
        #expect(names.count == 3)
        #expect(names.prefix(2).compactMap { $0?.first }.sorted() == ["t.created", "t.delivered"])
        #expect(names.last == ["t.revoked"])
        await listener.shutdown()
        await store.shutdown()
    }
}
