/// Gathers the items that arrive while a commit is in flight and commits them together: one transaction (and one
/// durable commit) for the group instead of one each. A lone item is committed at once, with no wait for company,
/// so grouping adds no latency; it only forms while commits are busy. `commit` answers each item of its group in
/// order; when it throws, every item of that group gets the error (the group was rolled back whole). A group holds
/// at most `maximumGroup` items; the rest wait for the next.
public actor GroupCommit<Item: Sendable, Answer: Sendable> {
    private var waiting: [(Item, CheckedContinuation<Answer, any Error>)] = []
    private var committing = false
    private let maximumGroup: Int
    private let commit: @Sendable ([Item]) async throws -> [Answer]

    public init(maximumGroup: Int = .max, commit: @escaping @Sendable ([Item]) async throws -> [Answer]) {
        precondition(maximumGroup > 0, "a group holds at least one item")
        self.maximumGroup = maximumGroup
        self.commit = commit
    }

    /// How many items wait for the next commit (tests watch groups form with it).
    var waitingCount: Int { waiting.count }

    /// Commits `item` with whatever else is waiting, and returns its answer.
    public func submit(_ item: Item) async throws -> Answer {
        try await withCheckedThrowingContinuation { continuation in
            waiting.append((item, continuation))
            if !committing {
                committing = true
                Task { await drain() }
            }
        }
    }

    private func drain() async {
        while !waiting.isEmpty {
            let group = Array(waiting.prefix(maximumGroup))
            waiting.removeFirst(group.count)
            do {
                let answers = try await commit(group.map(\.0))
                precondition(answers.count == group.count, "a group commit must answer each of its items")
                for (answer, item) in zip(answers, group) { item.1.resume(returning: answer) }
            } catch {
                for item in group { item.1.resume(throwing: error) }
            }
        }
        committing = false
    }
}
