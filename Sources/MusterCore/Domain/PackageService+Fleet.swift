import Foundation
import MusterStore

/// A poller as the console's pollers page shows it: its record, identity expiries and its packages per status.
public struct PollerSummary: Sendable {
    public let record: PollerRecord
    public let svidExpiresAt: Int64?
    public let caExpiresAt: Int64?
    public let packageCounts: [PackageStatus: Int]
    /// The status of the poller's own package (its lifecycle, not its connection).
    public let packageStatus: PackageStatus?
}

/// A poller an agent or checker package may name: a live poller package, with what Core has heard from it.
public struct PollerChoice: Sendable {
    public let name: String
    public let site: String
    public let lastContactAt: Int64?
}

extension PackageService {
    /// Counts per status of the packages `filter` matches (its status ignored).
    public func counts(_ filter: PackageFilter) async throws -> [PackageStatus: Int] {
        try await DomainError.mapping { try await store.packageCounts(filter) }
    }

    /// A package's audit rows, oldest first: its whole history.
    public func history(id: String) async throws -> [AuditRecord] {
        try await DomainError.mapping {
            try await store.auditLog(AuditFilter(targetID: id, limit: 1000)).items.reversed()
        }
    }

    /// Every poller Core knows, with its identity expiries and package counts.
    public func pollerSummaries() async throws -> [PollerSummary] {
        try await DomainError.mapping {
            let counts = try await store.packageCountsByPoller()
            var summaries: [PollerSummary] = []
            for record in try await store.pollers() {
                let expiries = try await store.identityExpiries(spiffeID: record.spiffeID)
                summaries.append(
                    PollerSummary(
                        record: record, svidExpiresAt: expiries["svid"], caExpiresAt: expiries["ca"],
                        packageCounts: counts[record.name] ?? [:],
                        packageStatus: try await store.package(id: record.packageID)?.status))
            }
            return summaries
        }
    }

    /// The pollers a new agent or checker package may name (live poller packages), by name.
    public func pollerChoices() async throws -> [PollerChoice] {
        try await DomainError.mapping {
            let heard = Dictionary(try await store.pollers().map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
            var choices: [String: PollerChoice] = [:]
            for status in PackageStatus.live {
                let page = try await store.listPackages(
                    PackageFilter(status: status, componentType: .poller, limit: 1000))
                for record in page.items where choices[record.name] == nil {
                    choices[record.name] = PollerChoice(
                        name: record.name, site: record.site, lastContactAt: heard[record.name]?.lastContactAt)
                }
            }
            return choices.values.sorted { $0.name < $1.name }
        }
    }

    /// One page of the audit log.
    public func auditLog(_ filter: AuditFilter) async throws -> Page<AuditRecord> {
        try await DomainError.mapping { try await store.auditLog(filter) }
    }

    /// The newest `count` events, oldest first, and the id of the last.
    public func recentEvents(_ count: Int) async throws -> (events: [EventRecord], last: Int64) {
        try await DomainError.mapping {
            let last = try await store.lastEventID()
            return (try await store.events(after: max(0, last - Int64(count)), limit: count), last)
        }
    }
}
