import Foundation
import SQLKit

/// One open database connection as the pool hands it out.
struct PooledConnection: Sendable {
    let sql: any SQLDatabase
    let close: @Sendable () async -> Void
    let isClosed: @Sendable () -> Bool
}

/// A small bounded pool: reuses idle connections, opens new ones up to `maximum`, queues callers beyond that,
/// and drops a connection that failed so the next caller reconnects (the database may have come back).
actor ConnectionPool {
    private let maximum: Int
    private let open: @Sendable () async throws -> PooledConnection
    private var idle: [PooledConnection] = []
    private var opened = 0
    /// Parked callers; resumed with a connection, or with nil meaning "a slot is free, open one yourself".
    private var waiters: [CheckedContinuation<PooledConnection?, Never>] = []
    private var closed = false

    init(maximum: Int, open: @escaping @Sendable () async throws -> PooledConnection) {
        self.maximum = max(1, maximum)
        self.open = open
    }

    func acquire() async throws -> PooledConnection {
        if closed { throw StoreError(.unavailable, "the store is closed") }
        while let connection = idle.popLast() {
            if !connection.isClosed() { return connection }
            opened -= 1
        }
        if opened >= maximum {
            if let handed = await withCheckedContinuation({ waiters.append($0) }) { return handed }
            if closed { throw StoreError(.unavailable, "the store is closed") }
        }
        opened += 1
        do {
            return try await open()
        } catch {
            opened -= 1
            wakeOne()
            throw error
        }
    }

    func release(_ connection: PooledConnection, broken: Bool) async {
        if broken || closed || connection.isClosed() {
            opened -= 1
            wakeOne()
            await connection.close()
            return
        }
        if !waiters.isEmpty {
            waiters.removeFirst().resume(returning: connection)
        } else {
            idle.append(connection)
        }
    }

    func shutdown() async {
        closed = true
        let connections = idle
        idle.removeAll()
        opened -= connections.count
        for connection in connections { await connection.close() }
        for waiter in waiters { waiter.resume(returning: nil) }
        waiters.removeAll()
    }

    private func wakeOne() {
        if !waiters.isEmpty { waiters.removeFirst().resume(returning: nil) }
    }
}
