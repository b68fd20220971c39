import Foundation
import MusterStore
import Testing

@testable import MusterCore

/// The store operations behind the web console, on SQLite and PostgreSQL alike.
@Suite("Console store operations")
struct ConsoleStoreTests {
    @Test(
        "name search treats % and _ as text; counts per status follow the other filters", arguments: Backend.available)
    func searchAndCounts(backend: Backend) async throws {
        let h = try Harness(store: try await backend.makeStore())
        try await h.poller()
        for name in ["probe-a", "probe-b", "db_1", "db-1x"] { try await h.agent(name) }
        let gone = try await h.agent("probe-c")
        _ = try await h.packages.revoke(id: gone.id, reason: nil, by: h.admin)
        func names(_ part: String) async throws -> [String] {
            try await h.store.listPackages(PackageFilter(nameContains: part)).items.map(\.name).sorted()
        }
        #expect(try await names("PROBE") == ["probe-a", "probe-b", "probe-c"])
        #expect(try await names("db_") == ["db_1"])
        #expect(try await names("%").isEmpty)
        let counts = try await h.store.packageCounts(PackageFilter(componentType: .agent, nameContains: "probe"))
        #expect(counts == [.created: 2, .revoked: 1])
        // The status of a filter does not narrow its counts (they are the page's tabs).
        #expect(try await h.store.packageCounts(PackageFilter(status: .revoked)) == [.created: 5, .revoked: 1])
        #expect(try await h.store.packageCountsByPoller() == ["edge-1": [.created: 4, .revoked: 1]])
        await h.store.shutdown()
    }

    @Test("a session lives until sign-out or until it sits idle past its timeout", arguments: Backend.available)
    func sessions(backend: Backend) async throws {
        let h = try Harness(store: try await backend.makeStore())
        let token = try await OperatorTokens.mint(name: "ops", scopes: [.configRead], createdBy: "test", store: h.store)
        let sessions = ConsoleSessions(
            store: h.store, auditor: RefusalAuditor(store: h.store, logger: Backend.logger), logger: Backend.logger,
            idleTimeout: 5)
        let (cookie, session) = try await sessions.signIn(token: token, from: "192.0.2.9")
        #expect(session.principal.name == "token:ops" && session.principal.has(.configRead))
        #expect(!session.principal.has(.configWrite))
        let resumed = try #require(try await sessions.resume(cookie: cookie, from: "192.0.2.9"))
        #expect(resumed.csrf == session.csrf)
        #expect(try await sessions.resume(cookie: cookie + "x", from: nil) == nil)
        await #expect(throws: DomainError(.unauthenticated, "")) {
            try await sessions.signIn(token: token + "x", from: nil)
        }
        try await sessions.signOut(session)
        #expect(try await sessions.resume(cookie: cookie, from: nil) == nil)
        let audit = try await h.store.auditLog(AuditFilter(limit: 10)).items.map(\.action)
        #expect(audit.contains("console.sign_in") && audit.contains("console.sign_out"))
        #expect(!audit.joined().contains(cookie) && !audit.joined().contains(token))

        // Idle past the timeout: gone.
        let (idle, _) = try await sessions.signIn(token: token, from: nil)
        try await h.store.touchSession(idHash: ConsoleSessions.hash(idle), at: Clock.nowMillis() - 6_000)
        #expect(try await sessions.resume(cookie: idle, from: nil) == nil)
        await h.store.shutdown()
    }
}

extension ConsoleSession: Equatable {
    public static func == (left: ConsoleSession, right: ConsoleSession) -> Bool { left.idHash == right.idHash }
}
