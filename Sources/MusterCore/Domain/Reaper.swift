import Foundation
import Logging
import MusterStore
import ServiceLifecycle

/// Expires Created/Delivered packages past their TTL and enrollment requests past 24 h, every `interval`, in batches: each pass reads only
/// the expired rows through the (status, expires_at) index.
public struct Reaper: Service, CustomStringConvertible {
    let packages: PackageService
    let interval: TimeInterval
    let logger: Logger
    public var description: String { "Reaper(every \(interval) s)" }

    public init(packages: PackageService, interval: TimeInterval, logger: Logger) {
        self.packages = packages
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                let count = try await sweep()
                if count > 0 { logger.info("reaper expired packages", metadata: ["count": "\(count)"]) }
            } catch {
                logger.warning("reaper pass failed; will retry", metadata: ["error": "\(error)"])
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .milliseconds(Int(interval * 1000))) }
        }
    }

    /// One pass: expires everything due now; returns how many moved.
    @discardableResult
    public func sweep(at now: Int64 = Clock.nowMillis()) async throws -> Int {
        var total = 0
        while true {
            let due = try await packages.store.packagesDue(at: now, limit: 200)
            var moved = 0
            for id in due where try await packages.expire(id: id, at: now) { moved += 1 }
            total += moved
            packages.metrics.expired.increment(by: Int64(moved))
            if due.count < 200 || moved == 0 { break }
        }
        // Enrollment requests nobody decided on within 24 h.
        while true {
            let due = try await packages.store.enrollmentsDue(at: now, limit: 200)
            var moved = 0
            for id in due where try await packages.expireEnrollment(id: id, at: now) { moved += 1 }
            total += moved
            if due.count < 200 || moved == 0 { return total }
        }
    }
}
