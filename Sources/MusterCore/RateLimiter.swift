import Foundation
import MusterConcurrency

/// A token bucket per key (the operator token's name): `perMinute` actions, refilled smoothly.
/// Per Core process; several replicas each allow the rate.
public final class RateLimiter: Sendable {
    private struct Bucket {
        var tokens: Double
        var updated: TimeInterval
    }
    private let perMinute: Int
    private let buckets = LockedValue<[String: Bucket]>([:])

    public init(perMinute: Int) { self.perMinute = max(1, perMinute) }

    /// Takes `count` actions for `key`, all or none; nil if allowed, else the whole seconds to wait (nil never
    /// comes for more than a minute's worth: see `capacity`).
    public func take(_ key: String, count: Int = 1, now: TimeInterval = Date().timeIntervalSince1970) -> Int? {
        let capacity = Double(perMinute)
        let refill = capacity / 60
        let wanted = Double(max(1, count))
        return buckets.withLock { buckets in
            var bucket = buckets[key] ?? Bucket(tokens: capacity, updated: now)
            bucket.tokens = min(capacity, bucket.tokens + (now - bucket.updated) * refill)
            bucket.updated = now
            defer { buckets[key] = bucket }
            if bucket.tokens >= wanted {
                bucket.tokens -= wanted
                return nil
            }
            return Int(((min(wanted, capacity) - bucket.tokens) / refill).rounded(.up))
        }
    }

    /// The most actions one key may take at once (a minute's worth).
    public var capacity: Int { perMinute }
}
