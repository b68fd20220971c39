import Foundation
import SQLKit

/// What waits for Core: activations (exactly once, by package) and refused joins (at least once, for the audit log).
extension PollerCache {
    public func outbox(limit: Int) async throws -> [PendingActivation] {
        try await database.read { sql in
            try await sql.raw("SELECT * FROM outbox ORDER BY activated_at LIMIT \(unsafeRaw: "\(limit)")")
                .all(decoding: PendingActivation.self, with: Self.decoder)
        }
    }

    /// Most refusals kept for Core; beyond this (a flood of bad tokens while Core is away) new ones are only logged.
    public static let maxQueuedRefusals = 10_000

    /// Queues a refused join for Core's audit log, unless the queue is full.
    public func queueRefusal(packageID: String?, reason: String, from address: String, at now: Int64) async throws {
        try await database.write { sql in
            try await sql.raw(
                """
                INSERT INTO refusals (package_id, reason, source_address, at)
                SELECT \(bind: packageID ?? ""), \(bind: reason), \(bind: address), \(bind: now)
                WHERE (SELECT COUNT(*) FROM refusals) < \(bind: Self.maxQueuedRefusals)
                """
            ).run()
        }
    }

    public func refusals(limit: Int) async throws -> [QueuedRefusal] {
        try await database.read { sql in
            try await sql.raw("SELECT * FROM refusals ORDER BY id LIMIT \(unsafeRaw: "\(limit)")").all(
                decoding: QueuedRefusal.self, with: Self.decoder)
        }
    }

    /// Removes refusals Core has audited (every id up to `last`).
    public func removeRefusals(through last: Int64) async throws {
        try await database.write { sql in try await sql.raw("DELETE FROM refusals WHERE id <= \(bind: last)").run() }
    }

    /// Removes delivered (or refused-for-good) activations: one statement (the outbox sends at most 100 at a time).
    public func removeFromOutbox(_ packageIDs: [String]) async throws {
        guard !packageIDs.isEmpty else { return }
        try await database.write { sql in
            try await sql.raw("DELETE FROM outbox WHERE package_id IN (\(binds: packageIDs))").run()
        }
    }
}
