import Foundation
import Logging
import MusterConcurrency
import MusterStore
import ServiceLifecycle

/// When each poller was last heard from, written together: every call from an active poller notes its contact
/// here, and the service writes all the contacts noted since its last write in one transaction every `interval`,
/// so a fleet's heartbeats do not each take SQLite's one writer. The stored time lags by at most `interval`; the
/// notes still held when the service stops are written before it returns.
public final class PollerContacts: Service, CustomStringConvertible {
    private let store: Store
    private let logger: Logger
    private let interval: Duration
    private let pending = LockedValue<[String: PollerContact]>([:])
    private let writes = LockedValue(0)
    public var description: String { "PollerContacts" }

    public init(store: Store, logger: Logger, interval: Duration = .seconds(1)) {
        self.store = store
        self.logger = logger
        self.interval = interval
    }

    /// How many transactions have written contacts: for tests.
    var transactions: Int { writes.withLock { $0 } }

    /// Notes that `poller` was heard from at `at` (Unix ms) from `address`; a note older than one already held is
    /// dropped.
    public func note(_ poller: String, at: Int64, from address: String?) {
        hold([PollerContact(name: poller, at: at, from: address)])
    }

    private func hold(_ contacts: [PollerContact]) {
        pending.withLock { pending in
            for contact in contacts where (pending[contact.name]?.at ?? .min) <= contact.at {
                pending[contact.name] = contact
            }
        }
    }

    /// Writes every contact noted so far in one transaction. If the store refuses, the contacts are held again
    /// (unless a newer note replaced them) for the next write.
    public func flush() async {
        let batch = pending.withLock { pending in
            defer { pending = [:] }
            return Array(pending.values)
        }
        guard !batch.isEmpty else { return }
        do {
            try await store.touchPollers(batch)
            writes.withLock { $0 += 1 }
        } catch {
            logger.warning(
                "cannot record the pollers' last contact; trying again",
                metadata: ["pollers": "\(batch.count)", "error": "\(error)"])
            hold(batch)
        }
    }

    public func run() async throws {
        // At least one pass, so a service stopped at once still writes what it holds.
        repeat {
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: self.interval) }
            await flush()
        } while !Task.isShuttingDownGracefully && !Task.isCancelled
    }
}
