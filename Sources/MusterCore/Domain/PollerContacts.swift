import Foundation
import Logging
import MusterConcurrency
import MusterStore
import ServiceLifecycle

/// When each poller was last heard from, written together: every call from an active poller notes its contact
/// here, and the service writes all the contacts noted since its last write in one transaction every `interval`,
/// so a fleet's contacts do not each take SQLite's one writer. A poller whose package stream is open is heard
/// from without calls: its stream is noted again every `streamInterval` (each stream on its own schedule, so a
/// fleet's notes spread over the interval). The stored time lags by at most `interval`; the notes still held when
/// the service stops are written before it returns.
public final class PollerContacts: Service, CustomStringConvertible {
    private let store: Store
    private let logger: Logger
    private let interval: Duration
    let streamInterval: Duration
    private let pending = LockedValue<[String: PollerContact]>([:])
    private let streams = LockedValue<[String: OpenStreams]>([:])
    private let writes = LockedValue(0)
    public var description: String { "PollerContacts" }

    /// A poller's open package streams: how many, the address of the latest, and when they were last noted.
    private struct OpenStreams {
        var count: Int
        var address: String?
        var noted: ContinuousClock.Instant
    }

    public init(
        store: Store, logger: Logger, interval: Duration = .seconds(1), streamInterval: Duration = .seconds(30)
    ) {
        self.store = store
        self.logger = logger
        self.interval = interval
        self.streamInterval = streamInterval
    }

    /// How many transactions have written contacts: for tests.
    var transactions: Int { writes.withLock { $0 } }

    /// Notes that `poller` was heard from at `at` (Unix ms) from `address`; a note older than one already held is
    /// dropped.
    public func note(_ poller: String, at: Int64, from address: String?) {
        hold([PollerContact(name: poller, at: at, from: address)])
    }

    /// Counts `poller` as heard from while `body` runs (its package stream, open from `address`): noted again
    /// every `streamInterval` until `body` returns. The stream's own start was noted by the call that admitted it.
    /// A poller that vanished without closing its connection stays noted until Core's keepalive closes it.
    public func whileStreaming<R>(
        _ poller: String, from address: String?, _ body: () async throws -> R
    ) async rethrows -> R {
        streams.withLock { streams in
            var open = streams[poller] ?? OpenStreams(count: 0, address: address, noted: .now)
            open.count += 1
            open.address = address
            streams[poller] = open
        }
        defer {
            streams.withLock { streams in
                guard var open = streams[poller] else { return }
                open.count -= 1
                streams[poller] = open.count > 0 ? open : nil
            }
        }
        return try await body()
    }

    /// Notes, at `at` (Unix ms), every poller whose open streams were last noted `streamInterval` or more before
    /// `now`.
    func noteOpenStreams(now: ContinuousClock.Instant = .now, at: Int64 = Clock.nowMillis()) {
        let due = streams.withLock { streams in
            var due: [PollerContact] = []
            // In place, by index: a fleet's table is walked every second and must not be copied each time.
            for index in streams.indices where now - streams.values[index].noted >= streamInterval {
                due.append(PollerContact(name: streams.keys[index], at: at, from: streams.values[index].address))
                streams.values[index].noted = now
            }
            return due
        }
        if !due.isEmpty { hold(due) }
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
        noteOpenStreams()
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
