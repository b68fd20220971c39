import Foundation
import MusterArchive
import MusterIdentity
import SQLKit
import ServiceLifecycle
import Testing

@testable import MusterCore
@testable import MusterStore

@Suite("package lifecycle on each database")
struct LifecycleTests {
    @Test("migrations are versioned and idempotent, also when two replicas run them", arguments: Backend.available)
    func migrations(backend: Backend) async throws {
        let store = try await backend.makeStore()
        let other = backend.sibling(of: store)
        async let first: Void = store.migrate()
        async let second: Void = other.migrate()
        _ = try await (first, second)
        #expect(try await store.schemaVersion() == Store.migrations.last!.version)
        await other.shutdown()
        await store.shutdown()
    }

    @Test(
        "pulls of many streams at once: each moves with its own audit row and event; one downloaded or revoked meanwhile is left as it is",
        arguments: Backend.available)
    func pullsTogether(backend: Backend) async throws {
        let h = try Harness(store: try await backend.makeStore())
        try await h.poller()
        var records: [PackageRecord] = []
        for index in 0..<20 {
            records.append(try #require(try await h.store.package(id: try await h.agent("a\(index)").id)))
        }
        _ = try await h.packages.download(id: records[0].id, by: h.admin)
        _ = try await h.packages.revoke(id: records[1].id, reason: nil, by: h.admin)
        // The records as a stream holds them: still Created, as the feed read them before the download and revocation.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for record in records { group.addTask { try await h.packages.markPulled([record], by: "edge-1") } }
            try await group.waitForAll()
        }
        for record in records[2...] {
            let stored = try #require(try await h.store.package(id: record.id))
            #expect(stored.status == .delivered && stored.deliveredVia == "poller" && stored.deliveredAt != nil)
        }
        #expect(try await h.store.package(id: records[0].id)?.deliveredVia == "download")
        #expect(try await h.store.package(id: records[1].id)?.status == .revoked)
        let audit = try await h.store.auditLog(AuditFilter(action: "package.pull"))
        #expect(Set(audit.items.compactMap(\.targetID)) == Set(records[2...].map(\.id)))
        #expect(audit.items.count == 18 && audit.items.allSatisfy { $0.actor == "poller:edge-1" })
        let delivered = try await h.store.events(after: 0, limit: 100).filter { $0.type == "package.delivered" }
        // 18 pulls and the operator's download of a Created package.
        #expect(delivered.count == 19)
        await h.store.shutdown()
    }

    @Test(
        "one stream's packages marked in one go: one transaction, events in the order they are sent, none twice",
        arguments: Backend.available)
    func pullsInOneGo(backend: Backend) async throws {
        let h = try Harness(store: try await backend.makeStore())
        try await h.poller()
        var records: [PackageRecord] = []
        for index in 0..<12 {
            records.append(try #require(try await h.store.package(id: try await h.agent("b\(index)").id)))
        }
        let before = try await h.store.lastEventID()
        try await h.packages.markPulled(records + [records[3]], by: "edge-1")
        let stored = try await h.store.packages(ids: records.map(\.id))
        // One group: every package moved at the same instant.
        #expect(Set(records.compactMap { stored[$0.id]?.deliveredAt }).count == 1)
        #expect(records.allSatisfy { stored[$0.id]?.deliveredVia == "poller" })
        let events = try await h.store.events(after: before, limit: 100)
        #expect(events.map(\.type) == Array(repeating: "package.delivered", count: 12))
        #expect(events.map(\.subject) == records.map(\.id))
        let audit = try await h.store.auditLog(AuditFilter(action: "package.pull"))
        #expect(audit.items.count == 12)
        // Audit rows in the order asked (the log reads newest first).
        #expect(audit.items.reversed().compactMap(\.targetID) == records.map(\.id))
        // Each event, made before the move from the record the stream held, describes the package as stored.
        for event in events {
            let row = try #require(stored[event.subject])
            let expected = PackageService.event("package.delivered", PackageView(row, joinCommand: nil), at: event.at)
            #expect(try Self.object(event.payload) == Self.object(expected.payload))
        }
        await h.store.shutdown()
    }

    /// A JSON object's text as a comparable value (key order aside).
    static func object(_ text: String) throws -> NSDictionary {
        try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? NSDictionary)
    }

    @Test(
        "the poller an agent names, read in one go: none, not attested yet, attested (its address), revoked",
        arguments: Backend.available)
    func liveParent(backend: Backend) async throws {
        let h = try Harness(store: try await backend.makeStore())
        #expect(try await h.store.liveParent(named: "edge-1") == nil)
        let poller = try await h.poller()
        #expect(try await h.store.liveParent(named: "edge-1") == LiveParent(advertiseAddress: nil))
        // Its attestation records where it listens (the pollers row its package made).
        try await h.store.transaction { sql in
            try await sql.raw("UPDATE pollers SET advertise_address = '10.0.0.5:50052' WHERE name = 'edge-1'").run()
        }
        #expect(try await h.store.liveParent(named: "edge-1") == LiveParent(advertiseAddress: "10.0.0.5:50052"))
        #expect(try await h.store.liveParent(named: "edge-2") == nil)
        _ = try await h.packages.revoke(id: poller.id, reason: nil, by: h.admin)
        #expect(try await h.store.liveParent(named: "edge-1") == nil)
        await h.store.shutdown()
    }

    @Test(
        "created → delivered → revoked, each with one audit row and one event; invalid moves are conflicts",
        arguments: Backend.available)
    func transitions(backend: Backend) async throws {
        let h = try Harness(store: try await backend.makeStore())
        try await h.poller()
        let agent = try await h.agent("a1")
        #expect(agent.status == "created")
        #expect(agent.joinCommand?.contains("--ca-pin '\(h.identity.caPin)'") == true)
        #expect(agent.joinCommand?.contains("mjt_") == false)

        let (_, archive) = try await h.packages.download(id: agent.id, by: h.admin)
        #expect(archive.count > 100)
        #expect(try await h.packages.get(id: agent.id).status == "delivered")
        await #expect(throws: DomainError(.gone, "")) { try await h.packages.download(id: agent.id, by: h.admin) }

        let revoked = try await h.packages.revoke(id: agent.id, reason: "lost laptop", by: h.admin)
        #expect(
            revoked.status == "revoked" && revoked.revokeReason == "lost laptop" && revoked.revokedBy == "token:test")
        await #expect(throws: DomainError(.conflict, "")) {
            try await h.packages.revoke(id: agent.id, reason: nil, by: h.admin)
        }
        await #expect(throws: DomainError(.notFound, "")) {
            try await h.packages.revoke(id: "nope", reason: nil, by: h.admin)
        }

        let audit = try await h.store.auditLog(AuditFilter(targetID: agent.id))
        #expect(audit.items.map(\.action) == ["package.revoke", "package.download", "package.create"])
        #expect(audit.items.allSatisfy { $0.sourceIP == "192.0.2.7" && $0.actor == "token:test" })
        let events = try await h.store.events(after: 0, limit: 100).filter { $0.subject == agent.id }
        #expect(events.map(\.type) == ["package.created", "package.delivered", "package.revoked"])
        #expect(events.allSatisfy { !$0.payload.contains("mjt_") })
        await h.store.shutdown()
    }

    @Test(
        "revoking a poller revokes its live agents' and checkers' packages in the same transaction, each audited",
        arguments: Backend.available)
    func pollerRevocationCascades(backend: Backend) async throws {
        let h = try Harness(store: try await backend.makeStore())
        let poller = try await h.poller()
        let first = try await h.agent("a1")
        let second = try await h.agent("a2")
        _ = try await h.packages.revoke(id: second.id, reason: "earlier", by: h.admin)
        _ = try await h.packages.revoke(id: poller.id, reason: "host lost", by: h.admin)

        let cascaded = try await h.packages.get(id: first.id)
        #expect(
            cascaded.status == "revoked" && cascaded.revokeReason == "its poller edge-1 was revoked"
                && cascaded.revokedBy == "token:test")
        #expect(
            try await h.packages.get(id: second.id).revokeReason == "earlier",
            "an already revoked package keeps its own reason")
        let rows = try await h.store.auditLog(AuditFilter(targetID: first.id)).items
        #expect(
            rows.map(\.action) == ["package.revoke", "package.create"]
                && rows[0].reason == "its poller edge-1 was revoked")
        let events = try await h.store.events(after: 0, limit: 100).filter { $0.type == "package.revoked" }.map(
            \.subject)
        #expect(events == [second.id, poller.id, first.id])
        // The agent's name is free again under a new poller package of the same name.
        _ = try await h.poller()
        #expect(try await h.agent("a1").status == "created")
        await h.store.shutdown()
    }

    @Test(
        "two live packages cannot hold one SPIFFE ID; after revocation the name is free again",
        arguments: Backend.available)
    func uniqueIdentity(backend: Backend) async throws {
        let h = try Harness(store: try await backend.makeStore())
        let first = try await h.poller()
        await #expect(throws: DomainError(.conflict, "")) { try await h.poller() }
        _ = try await h.packages.revoke(id: first.id, reason: nil, by: h.admin)
        let second = try await h.poller()
        #expect(second.id != first.id)
        #expect(try await h.store.poller(named: "edge-1")?.packageID == second.id)
        await h.store.shutdown()
    }

    @Test(
        "a report of many activations answers as one at a time did: fresh ones activated once each, revoked ones late, foreign and wrong IDs refused, repeats accepted with no second row",
        arguments: Backend.available)
    func reportedTogether(backend: Backend) async throws {
        let h = try Harness(store: try await backend.makeStore())
        try await h.poller()
        try await h.poller("edge-2")
        let fresh = [try await h.agent("a1"), try await h.agent("a2"), try await h.agent("a3")]
        let revoked = try await h.agent("gone")
        _ = try await h.packages.revoke(id: revoked.id, reason: nil, by: h.admin)
        let foreign = try await h.agent("other", poller: "edge-2")
        // Each report its own address and time (after the creations, before the report: Core keeps times in that
        // range), so a row that took another's values shows.
        let start = Clock.nowMillis()
        func report(_ package: PackageView, id: String? = nil, index: Int = 9) -> ReportedActivation {
            ReportedActivation(
                packageID: package.id, spiffeID: id ?? package.spiffeID, sourceAddress: "10.0.0.\(index)",
                activatedAt: start + Int64(index), serial: "01")
        }
        let reports =
            fresh.enumerated().map { report($1, index: $0) } + [
                report(revoked), report(foreign), report(fresh[0]),
                report(try await h.agent("wrong-id"), id: "spiffe://test.example/muster/poller/edge-1/agent/x"),
            ]
        try await Task.sleep(for: .milliseconds(20))
        let accepted = try await h.packages.reportActivations(reports, poller: "edge-1", from: "192.0.2.9")
        #expect(accepted == fresh.map(\.id) + [revoked.id, fresh[0].id])
        for (index, package) in fresh.enumerated() {
            let read = try await h.packages.get(id: package.id)
            #expect(read.status == "activated" && read.activatedFromIP == "10.0.0.\(index)")
            #expect(read.activatedAt == Timestamp.text(start + Int64(index)))
            #expect(read.activatedSpiffeID == package.spiffeID)
        }
        #expect(try await h.packages.get(id: revoked.id).status == "revoked")
        #expect(try await h.packages.get(id: foreign.id).status == "created")
        // One ok row and one event per fresh package, even though a1 came twice; the revoked one is 'late'.
        let rows = try await h.store.auditLog(AuditFilter(action: "package.activate", limit: 50)).items
        #expect(rows.filter { $0.outcome == "ok" }.compactMap(\.targetID).sorted() == fresh.map(\.id).sorted())
        #expect(rows.filter { $0.outcome == "late" }.compactMap(\.targetID) == [revoked.id])
        #expect(rows.filter { $0.outcome == "denied" }.count == 2)
        let activated = try await h.store.events(after: 0, limit: 100).filter { $0.type == "package.activated" }
        #expect(activated.map(\.subject).sorted() == fresh.map(\.id).sorted())
        // Reported again (the poller did not hear the answer): accepted again, nothing written again.
        #expect(
            try await h.packages.reportActivations(Array(reports.prefix(3)), poller: "edge-1", from: "x")
                == accepted.prefix(3).map { $0 })
        #expect(try await h.store.events(after: 0, limit: 100).filter { $0.type == "package.activated" }.count == 3)
        #expect(
            try await h.store.auditLog(AuditFilter(action: "package.activate", limit: 50)).items.count == rows.count)
        await h.store.shutdown()
    }

    @Test("agents need a live poller; names and poller fields are checked", arguments: Backend.available)
    func refusals(backend: Backend) async throws {
        let h = try Harness(store: try await backend.makeStore())
        await #expect(throws: DomainError(.unprocessable, "")) { try await h.agent("a1", poller: "ghost") }
        await #expect(throws: DomainError(.invalid, "")) { try await h.poller("Bad Name") }
        await #expect(throws: DomainError(.invalid, "")) {
            try await h.packages.create(PackageRequest(name: "a", componentType: .agent), by: h.admin)
        }
        #expect(try await h.store.listPackages(PackageFilter()).items.isEmpty)
        await h.store.shutdown()
    }

    @Test(
        "200 parallel redemptions of one token: exactly one wins, across two connection pools",
        arguments: Backend.available)
    func parallelRedemption(backend: Backend) async throws {
        let h = try Harness(store: try await backend.makeStore(connections: 8))
        let poller = try await h.poller()
        let record = try #require(try await h.store.package(id: poller.id))
        let replica = backend.sibling(of: h.store)
        let stores = [h.store, replica]
        let wins = try await withThrowingTaskGroup(of: Bool.self) { group in
            for attempt in 0..<200 {
                group.addTask {
                    let store = stores[attempt % 2]
                    let won = try await store.redeem(
                        tokenHash: record.tokenHash, componentType: .poller, at: Clock.nowMillis(),
                        fromIP: "198.51.100.\(attempt % 250)",
                        spiffeID: record.spiffeID,
                        audit: {
                            AuditRecord(
                                actor: "poller", sourceIP: $0.activatedFromIP, action: "package.activate",
                                targetType: "package", targetID: $0.id)
                        },
                        event: {
                            EventRecord(at: Clock.nowMillis(), type: "package.activated", subject: $0.id, payload: "{}")
                        }
                    )
                    return won != nil
                }
            }
            return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        #expect(wins == 1)
        #expect(try await h.store.package(id: poller.id)?.status == .activated)
        let activations = try await h.store.auditLog(AuditFilter(action: "package.activate"))
        #expect(activations.items.count == 1)
        let reason = try await h.store.reasonForFailedRedemption(
            tokenHash: record.tokenHash, componentType: .poller, at: Clock.nowMillis())
        #expect(reason.reason == "token already used")
        await replica.shutdown()
        await h.store.shutdown()
    }

    @Test(
        "the reaper expires only due Created/Delivered packages, with audit rows and events",
        arguments: Backend.available)
    func reaper(backend: Backend) async throws {
        let h = try Harness(store: try await backend.makeStore())
        try await h.poller(ttl: 3600)
        let short = try await h.agent("a1", ttl: 60)
        let delivered = try await h.agent("a2", ttl: 60)
        _ = try await h.packages.download(id: delivered.id, by: h.admin)
        let revoked = try await h.agent("a3", ttl: 60)
        _ = try await h.packages.revoke(id: revoked.id, reason: nil, by: h.admin)

        let reaper = Reaper(packages: h.packages, interval: 60, logger: Backend.logger)
        #expect(try await reaper.sweep(at: Clock.nowMillis()) == 0)
        let later = Clock.nowMillis() + 120_000
        #expect(try await reaper.sweep(at: later) == 2)
        #expect(try await reaper.sweep(at: later) == 0)
        #expect(try await h.packages.get(id: short.id).status == "expired")
        #expect(try await h.packages.get(id: delivered.id).status == "expired")
        #expect(try await h.packages.get(id: revoked.id).status == "revoked")
        #expect(try await h.store.package(id: short.id)?.tokenCiphertext == nil)
        #expect(try await h.store.auditLog(AuditFilter(actor: "system:reaper")).items.count == 2)
        await #expect(throws: DomainError(.conflict, "")) { try await h.packages.download(id: short.id, by: h.admin) }
        await h.store.shutdown()
    }

    @Test("lists filter and page by cursor without gaps or repeats", arguments: Backend.available)
    func paging(backend: Backend) async throws {
        let h = try Harness(store: try await backend.makeStore())
        try await h.poller()
        for index in 0..<25 { try await h.agent("agent-\(index)") }
        var seen: [String] = []
        var cursor: PageCursor?
        repeat {
            let page = try await h.store.listPackages(PackageFilter(componentType: .agent, limit: 7, cursor: cursor))
            seen += page.items.map(\.name)
            cursor = try page.nextCursor.map(PageCursor.init(token:))
        } while cursor != nil
        #expect(seen.count == 25 && Set(seen).count == 25)
        #expect(try await h.store.listPackages(PackageFilter(componentType: .poller)).items.count == 1)
        #expect(try await h.store.listPackages(PackageFilter(pollerName: "edge-1", limit: 1000)).items.count == 25)
        #expect(throws: StoreError(.invalid, "")) { try PageCursor(token: "garbage!") }
        await h.store.shutdown()
    }

    @Test("an unreachable PostgreSQL is 'unavailable', not a crash or a hang")
    func unreachable() async throws {
        let store = Store(
            location: .postgres(host: "127.0.0.1", port: 1, user: "x", password: nil, database: "x"),
            logger: Backend.logger)
        await #expect(throws: StoreError(.unavailable, "")) { try await store.ping() }
        await store.shutdown()
    }
}

@Suite("pollers' last contacts")
struct PollerContactTests {
    @Test(
        "contacts noted together are written in one transaction, newest first, never moving a contact back",
        arguments: Backend.available)
    func batched(backend: Backend) async throws {
        let h = try Harness(store: try await backend.makeStore())
        for name in ["p1", "p2", "p3"] { try await h.poller(name) }
        let stored = { (name: String) in try await h.store.poller(named: name)?.lastContactAt }
        let base = Clock.nowMillis() + 60_000
        // An hour between writes: only `flush` writes here.
        let contacts = PollerContacts(store: h.store, logger: Backend.logger, interval: .seconds(3600))
        contacts.note("p1", at: base + 10, from: "192.0.2.1")
        contacts.note("p2", at: base + 20, from: nil)
        contacts.note("p1", at: base + 5, from: "192.0.2.9")  // older than the note held: dropped
        #expect(try await stored("p1") == nil)
        await contacts.flush()
        #expect(contacts.transactions == 1)
        #expect(try await stored("p1") == base + 10)
        #expect(try await h.store.poller(named: "p1")?.lastContactFrom == "192.0.2.1")
        #expect(try await stored("p2") == base + 20)
        #expect(try await stored("p3") == nil)
        // A later write with an older time (another replica's, say) leaves the newer one stored.
        contacts.note("p1", at: base, from: "192.0.2.2")
        await contacts.flush()
        #expect(try await stored("p1") == base + 10)
        await contacts.flush()
        #expect(contacts.transactions == 2)  // nothing noted: no transaction
        // A batch larger than one statement takes several, all in its transaction.
        try await h.store.touchPollers(
            [
                PollerContact(name: "p1", at: base + 30, from: "192.0.2.7"),
                PollerContact(name: "p2", at: base + 30, from: nil),
                PollerContact(name: "p3", at: base + 30, from: "192.0.2.8"),
            ], perStatement: 2)
        for name in ["p1", "p2", "p3"] { #expect(try await stored(name) == base + 30) }
        #expect(try await h.store.poller(named: "p3")?.lastContactFrom == "192.0.2.8")
        #expect(try await h.store.poller(named: "p2")?.lastContactFrom == nil)
        await h.store.shutdown()
    }

    @Test(
        "an open package stream is its poller's contact: noted again every stream interval until its last stream ends",
        arguments: Backend.available)
    func streams(backend: Backend) async throws {
        let h = try Harness(store: try await backend.makeStore())
        for name in ["p1", "p2", "p3"] { try await h.poller(name) }
        let stored = { (name: String) in try await h.store.poller(named: name)?.lastContactAt }
        let base = Clock.nowMillis() + 60_000
        let contacts = PollerContacts(
            store: h.store, logger: Backend.logger, interval: .seconds(3600), streamInterval: .seconds(30))
        // Streams held open until their latch is finished: two of p1's, one of p2's.
        var latches: [AsyncStream<Void>.Continuation] = []
        var streams: [Task<Void, Never>] = []
        for (name, address) in [("p1", "192.0.2.1"), ("p1", "192.0.2.2"), ("p2", "192.0.2.3")] {
            let (latch, continuation) = AsyncStream<Void>.makeStream()
            latches.append(continuation)
            streams.append(Task { await contacts.whileStreaming(name, from: address) { for await _ in latch {} } })
            // Registered in this order (p1's latest stream is the second), before the next one starts.
            try await Task.sleep(for: .milliseconds(50))
        }
        let opened = ContinuousClock.now
        contacts.noteOpenStreams(now: opened + .seconds(29), at: base)
        await contacts.flush()
        #expect(contacts.transactions == 0)  // not yet due
        contacts.noteOpenStreams(now: opened + .seconds(31), at: base + 1)
        await contacts.flush()
        #expect(try await stored("p1") == base + 1)
        #expect(try await stored("p2") == base + 1)
        #expect(try await stored("p3") == nil)
        #expect(try await h.store.poller(named: "p1")?.lastContactFrom == "192.0.2.2")  // the latest stream's
        contacts.noteOpenStreams(now: opened + .seconds(45), at: base + 2)
        await contacts.flush()
        #expect(contacts.transactions == 1)  // noted at +31: not due again before +61
        // One of p1's two streams ends: p1 is still streaming.
        latches[0].finish()
        await streams[0].value
        contacts.noteOpenStreams(now: opened + .seconds(62), at: base + 3)
        await contacts.flush()
        #expect(try await stored("p1") == base + 3)
        #expect(try await stored("p2") == base + 3)
        // Its last stream ends: p1 is noted no more, p2 still is.
        latches[1].finish()
        await streams[1].value
        contacts.noteOpenStreams(now: opened + .seconds(100), at: base + 4)
        await contacts.flush()
        #expect(try await stored("p1") == base + 3)
        #expect(try await stored("p2") == base + 4)
        latches[2].finish()
        await streams[2].value
        await h.store.shutdown()
    }

    @Test(
        "running, the service writes a note within its interval, and what it holds when it stops",
        arguments: Backend.available)
    func service(backend: Backend) async throws {
        let h = try Harness(store: try await backend.makeStore())
        try await h.poller("p1")
        try await h.poller("p2")
        let stored = { (name: String) in try await h.store.poller(named: name)?.lastContactAt }
        let at = Clock.nowMillis() + 60_000
        let contacts = PollerContacts(store: h.store, logger: Backend.logger, interval: .milliseconds(50))
        let running = Task { try await contacts.run() }
        contacts.note("p1", at: at, from: nil)
        var written: Int64?
        for _ in 0..<100 where written != at {
            try await Task.sleep(for: .milliseconds(20))
            written = try await stored("p1")
        }
        #expect(written == at)
        running.cancel()
        _ = await running.result
        // With an hour between writes, only stopping the service writes the note: a graceful shutdown, as Core's
        // service group gives it.
        let slow = PollerContacts(store: h.store, logger: Backend.logger, interval: .seconds(3600))
        let group = ServiceGroup(services: [slow], logger: Backend.logger)
        let stopping = Task { try await group.run() }
        slow.note("p2", at: at, from: nil)
        try await Task.sleep(for: .milliseconds(100))
        #expect(try await stored("p2") == nil)
        await group.triggerGracefulShutdown()
        try await stopping.value
        #expect(try await stored("p2") == at)
        await h.store.shutdown()
    }
}
