import Foundation
import Logging
import MusterDatabase
import SQLKit
import Testing

@testable import MusterPoller

/// How much of its SQLite file the poller's cache keeps in memory.
@Suite("poller cache memory")
struct PageCacheTests {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("muster-pages-\(UUID().uuidString)")

    static func cacheSize(_ sql: any SQLDatabase) async throws -> Int? {
        try await sql.raw("PRAGMA cache_size").first()?.decode(column: "cache_size", as: Int.self)
    }

    @Test("the poller's readers and its writer each keep a 512 KiB page cache; a database left alone keeps SQLite's")
    func pageCacheBound() async throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let cache = PollerCache(path: directory.appendingPathComponent("cache.db").path, logger: Logger(label: "test"))
        try await cache.open()
        #expect(try await cache.database.read(Self.cacheSize) == -512)
        #expect(try await cache.database.write(Self.cacheSize) == -512)
        await cache.close()

        let plain = Database(
            location: .sqlite(path: directory.appendingPathComponent("plain.db").path), logger: Logger(label: "test"))
        #expect(try await plain.read(Self.cacheSize) == -2000)
        await plain.shutdown()
    }
}
