import Foundation
import Logging
import MusterDatabase
import Testing

@testable import MusterPoller

/// The poller cache's redemptions on a real SQLite file: one statement per group commit.
@Suite("poller cache redemptions")
struct RedemptionTests {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("muster-redeem-\(UUID().uuidString)")

    func openCache() async throws -> PollerCache {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let cache = PollerCache(path: directory.appendingPathComponent("cache.db").path, logger: Logger(label: "test"))
        try await cache.open()
        return cache
    }

    func held(_ name: String, expiresAt: Int64) -> CachedPackage {
        CachedPackage(
            id: "id-\(name)", componentType: "agent", name: name, spiffeID: "spiffe://td/muster/poller/p/agent/\(name)",
            tokenHash: "hash-\(name)", expiresAt: expiresAt, selectors: "[]", state: "pending")
    }

    func claim(_ name: String, serial: String, at: Int64) -> Redemption {
        Redemption(
            tokenHash: "hash-\(name)", at: at, serial: serial, notAfter: at + 3_600_000,
            address: "10.0.0.\(serial.count)")
    }

    @Test("a group with one token twice redeems it for its first join only, and records that join's serial")
    func sameTokenTwice() async throws {
        let cache = try await openCache()
        let now = Clock.nowMillis()
        for (cursor, name) in ["a", "b"].enumerated() {
            try await cache.receive(held(name, expiresAt: now + 60_000), cursor: Int64(cursor + 1))
        }
        try await cache.receive(held("old", expiresAt: now - 1), cursor: 3)
        let results = try await PollerCache.commit(
            [
                claim("a", serial: "01", at: now), claim("b", serial: "02", at: now), claim("a", serial: "03", at: now),
                claim("old", serial: "04", at: now), claim("unknown", serial: "05", at: now),
            ], database: cache.database)
        #expect(results.map { $0?.name } == ["a", "b", nil, nil, nil])
        #expect(results[0]?.state == "redeemed" && results[0]?.redeemedAt == now)
        #expect(try await cache.issued(serial: "01")?.packageID == "id-a")
        #expect(try await cache.issued(serial: "03") == nil)
        let outbox = try await cache.outbox(limit: 10)
        #expect(outbox.map(\.serial).sorted() == ["01", "02"])
        // Spent now: a later group redeems neither again.
        let again = try await PollerCache.commit([claim("a", serial: "06", at: now)], database: cache.database)
        #expect(again == [nil])
        await cache.close()
        try? FileManager.default.removeItem(at: directory)
    }

    @Test("a group larger than one statement is split and keeps its order")
    func largeGroup() async throws {
        let cache = try await openCache()
        let now = Clock.nowMillis()
        let count = PollerCache.redemptionsPerStatement + 20
        for index in 0..<count {
            try await cache.receive(held("n\(index)", expiresAt: now + 60_000), cursor: Int64(index + 1))
        }
        let batch = (0..<count).reversed().map { claim("n\($0)", serial: String(format: "%04x", $0), at: now) }
        let results = try await PollerCache.commit(batch, database: cache.database)
        #expect(results.map { $0?.name } == (0..<count).reversed().map { "n\($0)" })
        #expect(try await cache.outbox(limit: 1000).count == count)
        await cache.close()
        try? FileManager.default.removeItem(at: directory)
    }
}
