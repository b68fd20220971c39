import Foundation
import Logging
@_exported import MusterDatabase
import SQLKit

/// Core's store: its schema (`Store.migrations`), its records and the named operations on them (packages and
/// their transitions, pollers, issued certificates, operator tokens, the audit log and the event outbox), over
/// the shared connection and transaction layer (`Database`).
public final class Store: Sendable {
    public let database: Database

    /// Opens (without connecting yet) Core's store at `location`; `connections` bounds the pool.
    public init(location: DatabaseLocation, connections: Int = 8, logger: Logger) {
        database = Database(location: location, connections: connections, logger: logger)
    }

    public var location: DatabaseLocation { database.location }
    public var isPostgres: Bool { database.isPostgres }
    public var canListenForEvents: Bool { database.canListenForEvents }

    /// Closes every idle connection; calls after this fail with `unavailable`.
    public func shutdown() async { await database.shutdown() }

    /// Checks the database answers (for `/readyz`).
    public func ping() async throws { try await database.ping() }

    func read<R: Sendable>(_ body: @Sendable (any SQLDatabase) async throws -> R) async throws -> R {
        try await database.read(body)
    }

    func transaction<R: Sendable>(_ body: @Sendable (any SQLDatabase) async throws -> R) async throws -> R {
        try await database.transaction(body)
    }

    func write<R: Sendable>(_ body: @Sendable (any SQLDatabase) async throws -> R) async throws -> R {
        try await database.write(body)
    }

    /// Calls `heard` for every event transaction any Core replica commits (PostgreSQL; see `Database`).
    /// `heard` gets the types a commit's notification names (nil: none named, as `muster_append_event` sent before
    /// migration 5).
    public func listenForEvents(listening: @Sendable () -> Void, heard: @Sendable ([String]?) -> Void) async throws {
        try await database.listenForEvents(channel: Store.eventChannel, listening: listening) { payload in
            heard(payload.isEmpty ? nil : payload.split(separator: ",").map(String.init))
        }
    }

    /// The PostgreSQL channel every event commit notifies (`pg_notify`, delivered at commit).
    static let eventChannel = "muster_events"
}
