import Foundation
import Logging
import MusterConcurrency
import MusterStore
import ServiceLifecycle

/// Writes the audit rows of refused callers (bad tokens, forged or revoked certificates, unauthenticated HTTP)
/// under a budget per source, so a flood of anonymous refusals cannot stall SQLite's one writer or fill the
/// disk. Each source gets `burst` rows, then one every `60 / perMinute` seconds; all sources together at most
/// `globalPerMinute`. What the budget holds back is counted, and written as one `audit.suppressed` row per
/// source and interval (with the count and the actions), so the audit log still says a flood happened.
public final class RefusalAuditor: Service, CustomStringConvertible {
    private struct Bucket {
        var tokens: Double
        var updated: TimeInterval
        var suppressed: Int = 0
        var actions: Set<String> = []
        var firstSuppressed: Int64?
    }

    let store: Store
    let logger: Logger
    private let burst: Double
    private let refill: Double
    private let globalBurst: Double
    private let globalRefill: Double
    private let maxSources: Int
    private let flushInterval: Duration
    private let state = LockedValue<(buckets: [String: Bucket], global: Bucket)>(([:], Bucket(tokens: 0, updated: 0)))
    public var description: String { "RefusalAuditor" }

    public init(
        store: Store, logger: Logger, burst: Int = 20, perMinute: Int = 30, globalPerMinute: Int = 600,
        maxSources: Int = 10_000,
        flushInterval: Duration = .seconds(30)
    ) {
        self.store = store
        self.logger = logger
        self.burst = Double(burst)
        self.refill = Double(perMinute) / 60
        self.globalBurst = Double(max(burst, globalPerMinute / 6))
        self.globalRefill = Double(globalPerMinute) / 60
        self.maxSources = maxSources
        self.flushInterval = flushInterval
        state.withLock { $0.global = Bucket(tokens: self.globalBurst, updated: Date().timeIntervalSince1970) }
    }

    /// Writes `record` if `source`'s budget allows; otherwise counts it for the next `audit.suppressed` row.
    /// True when the row was written.
    @discardableResult
    public func record(_ record: AuditRecord, source: String, now: TimeInterval = Date().timeIntervalSince1970) async
        -> Bool
    {
        guard admit(source: source, action: record.action, at: record.at, now: now) else { return false }
        do {
            try await store.audit(record)
            return true
        } catch {
            logger.warning(
                "cannot write an audit row for a refusal",
                metadata: ["action": "\(record.action)", "error": "\(error)"])
            return false
        }
    }

    /// `record(_:source:)` for a synchronous caller (gRPC's refusal observer): the budget is taken at once, and
    /// only an admitted row costs a task.
    public func recordDetached(_ record: AuditRecord, source: String, now: TimeInterval = Date().timeIntervalSince1970)
    {
        guard admit(source: source, action: record.action, at: record.at, now: now) else { return }
        Task { [store, logger] in
            do {
                try await store.audit(record)
            } catch {
                logger.warning(
                    "cannot write an audit row for a refusal",
                    metadata: ["action": "\(record.action)", "error": "\(error)"])
            }
        }
    }

    func admit(source: String, action: String, at: Int64, now: TimeInterval) -> Bool {
        state.withLock { state in
            let key = state.buckets[source] != nil || state.buckets.count < maxSources ? source : "(other sources)"
            var bucket = state.buckets[key] ?? Bucket(tokens: burst, updated: now)
            bucket.tokens = min(burst, bucket.tokens + (now - bucket.updated) * refill)
            bucket.updated = now
            var global = state.global
            global.tokens = min(globalBurst, global.tokens + (now - global.updated) * globalRefill)
            global.updated = now
            let admitted = bucket.tokens >= 1 && global.tokens >= 1
            if admitted {
                bucket.tokens -= 1
                global.tokens -= 1
            } else {
                bucket.suppressed += 1
                bucket.actions.insert(action)
                bucket.firstSuppressed = bucket.firstSuppressed ?? at
            }
            state.buckets[key] = bucket
            state.global = global
            return admitted
        }
    }

    /// Writes one `audit.suppressed` row per source that had refusals held back, and forgets idle full buckets.
    public func flush(now: TimeInterval = Date().timeIntervalSince1970) async {
        let held: [(String, Bucket)] = state.withLock { state in
            var held: [(String, Bucket)] = []
            for (key, bucket) in state.buckets {
                if bucket.suppressed > 0 {
                    held.append((key, bucket))
                    state.buckets[key]?.suppressed = 0
                    state.buckets[key]?.actions = []
                    state.buckets[key]?.firstSuppressed = nil
                } else if bucket.tokens + (now - bucket.updated) * refill >= burst {
                    state.buckets[key] = nil
                }
            }
            return held
        }
        for (source, bucket) in held {
            let row = AuditRecord(
                at: Clock.nowMillis(), actor: "anonymous", sourceIP: source == "(other sources)" ? nil : source,
                action: "audit.suppressed",
                targetType: "audit", targetID: nil, outcome: "denied",
                reason:
                    "\(bucket.suppressed) refused requests from this source were not written one by one (audit budget)",
                details: [
                    "count": "\(bucket.suppressed)", "actions": bucket.actions.sorted().joined(separator: " "),
                    "since": Timestamp.text(bucket.firstSuppressed ?? Clock.nowMillis()),
                ]
            )
            do {
                try await store.audit(row)
            } catch {
                logger.warning("cannot write the suppressed-refusals row", metadata: ["error": "\(error)"])
            }
            logger.notice(
                "refusals held back by the audit budget",
                metadata: ["source": "\(source)", "count": "\(bucket.suppressed)"])
        }
    }

    public func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: self.flushInterval) }
            await flush()
        }
    }
}
