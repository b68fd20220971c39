import Foundation
import Logging
import PostgresKit

extension Database {
    /// Whether notifications from other processes can be heard here (PostgreSQL's LISTEN/NOTIFY). On SQLite
    /// only one process writes, and it wakes its own readers.
    public var canListenForEvents: Bool { postgresConfiguration != nil }

    /// Calls `heard` with the payload of every notification on `channel`, once `listening` is called (the LISTEN is in place,
    /// so nothing notified after it is missed), until the task is cancelled or the connection fails (thrown as
    /// `unavailable`). Runs on a connection of its own, outside the pool.
    public func listenForEvents(channel: String, listening: @Sendable () -> Void, heard: @Sendable (String) -> Void)
        async throws
    {
        guard let configuration = postgresConfiguration else { return }
        let connection: PostgresConnection
        do {
            connection = try await PostgresConnection.connect(configuration: configuration, id: 2, logger: logger)
        } catch {
            throw StoreError(
                .unavailable, "cannot connect the event listener to \(location): \(Database.reason(error))")
        }
        do {
            try await connection.listen(on: channel) { notifications in
                listening()
                for try await notification in notifications { heard(notification.payload) }
            }
        } catch {
            await Database.closeUncancelled { try await connection.close() }
            if Task.isCancelled { return }
            throw StoreError(.unavailable, "the event listener lost \(location): \(Database.reason(error))")
        }
        await Database.closeUncancelled { try await connection.close() }
    }
}
