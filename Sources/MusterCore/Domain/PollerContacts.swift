import Foundation
import Logging
import MusterConcurrency
import MusterStore
import ServiceLifecycle

/// When each poller was last heard from, written together: every call from an active poller notes its contact
/// here, and one transaction at most every `interval` writes all the contacts noted since, so a fleet's heartbeats
/// do not each take SQLite's one writer. The stored time lags by at most `interval`; run as a service, the notes
/// still held at shutdown are written before the store closes.
public final class PollerContacts: Service, CustomStringConvertible {
    private struct Pending {
        var contacts: [String: PollerContact] = [:]
        var scheduled = false
    }

    private let store: Store
    private let logger: Logger
    private let interval: Duration
    private let pending = LockedValue(Pending())
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
    /// dropped. The first note after a write schedules the next one.
    public func note(_ poller: String, at: Int64, from address: String?) {
        let schedule = pending.withLock { pending -> Bool in
            if let held = pending.contacts[poller], held.at > at { return false }
            pending.contacts[poller] = PollerContact(name: poller, at: at, from: address)
            defer { pending.scheduled = true }
            return !pending.scheduled
        }
        if schedule { scheduleFlush() }
    }

    private func scheduleFlush() {
        Task { [self] in
            try? await Task.sleep(for: interval)
            await flush()
        }
    }

    /// Writes every contact noted so far in one transaction. If the store refuses, the contacts are kept (unless
    /// a newer note replaced them) and tried again after `interval`.
    public func flush() async {
        let batch = pending.withLock { pending -> [PollerContact] in
            defer {
                pending.contacts = [:]
                pending.scheduled = false
            }
            return Array(pending.contacts.values)
        }
        guard !batch.isEmpty else { return }
        do {
            try await store.touchPollers(batch)
            writes.withLock { $0 += 1 }
        } catch {
            logger.warning(
                "cannot record the pollers' last contact; trying again",
                metadata: ["pollers": "\(batch.count)", "error": "\(error)"])
            let schedule = pending.withLock { pending -> Bool in
                for contact in batch where (pending.contacts[contact.name]?.at ?? .min) < contact.at {
                    pending.contacts[contact.name] = contact
                }
                defer { pending.scheduled = true }
                return !pending.scheduled
            }
            if schedule { scheduleFlush() }
        }
    }

    public func run() async throws {
        try? await gracefulShutdown()
        await flush()
    }
}
