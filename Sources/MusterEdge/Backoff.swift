import Foundation

/// Exponential backoff with jitter for edge reconnects: 0.5 s doubling up to `cap` seconds, each wait drawn
/// from the upper half of its step, so many hosts that lost the same server do not return in lockstep.
public struct Backoff: Sendable {
    public var attempt = 0
    public var cap: Double

    public init(cap: Double = 10) { self.cap = cap }

    public mutating func next() -> Duration {
        let ceiling = min(cap, 0.5 * pow(2, Double(attempt)))
        attempt = min(attempt + 1, 16)
        return .milliseconds(Int64(Double.random(in: ceiling / 2...ceiling) * 1000))
    }

    public mutating func reset() { attempt = 0 }
}
