import Foundation

/// One token redemption waiting for the next group commit.
struct Redemption: Sendable {
    var tokenHash: String
    var at: Int64
    var serial: String
    var notAfter: Int64
    var address: String
}

/// Gathers the redemptions that arrive while a commit is in flight and commits them together: one transaction and
/// one fsync for the group instead of one each. A failed commit fails every redemption in it (all rolled back).
actor GroupCommit {
    private var waiting: [(Redemption, CheckedContinuation<CachedPackage?, any Error>)] = []
    private var committing = false
    private let commit: @Sendable ([Redemption]) async throws -> [CachedPackage?]

    init(commit: @escaping @Sendable ([Redemption]) async throws -> [CachedPackage?]) { self.commit = commit }

    func redeem(_ redemption: Redemption) async throws -> CachedPackage? {
        try await withCheckedThrowingContinuation { continuation in
            waiting.append((redemption, continuation))
            if !committing {
                committing = true
                Task { await drain() }
            }
        }
    }

    private func drain() async {
        while !waiting.isEmpty {
            let group = waiting
            waiting.removeAll()
            do {
                let results = try await commit(group.map(\.0))
                for (index, item) in group.enumerated() { item.1.resume(returning: results[index]) }
            } catch {
                for item in group { item.1.resume(throwing: error) }
            }
        }
        committing = false
    }
}
