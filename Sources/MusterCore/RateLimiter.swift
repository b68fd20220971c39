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

    /// Takes one action for `key`; nil if allowed, else the whole seconds to wait.
    public func take(_ key: String, now: TimeInterval = Date().timeIntervalSince1970) -> Int? {
        let capacity = Double(perMinute)
        let refill = capacity / 60
        return buckets.withLock { buckets in
            var bucket = buckets[key] ?? Bucket(tokens: capacity, updated: now)
            bucket.tokens = min(capacity, bucket.tokens + (now - bucket.updated) * refill)
            bucket.updated = now
            defer { buckets[key] = bucket }
            if bucket.tokens >= 1 {
                bucket.tokens -= 1
                return nil
            }
            return Int(((1 - bucket.tokens) / refill).rounded(.up))
        }
    }
}
