/// Gathers the items that arrive while a commit is in flight and commits them together: one transaction (and one
/// durable commit) for the group instead of one each. After a quiet spell a lone item is committed at once, with no
/// wait for company. While commits are busy (the last group finished less than `linger` ago) a new group waits up to
/// `linger` for company, or until it is full, before committing; with no linger, groups form only behind a commit in
/// flight. `commit` answers each item of its group in order; when it throws, every item of that group gets the error
/// (the group was rolled back whole). A group holds at most `maximumGroup` items; the rest wait for the next.
public actor GroupCommit<Item: Sendable, Answer: Sendable> {
    /// One caller's items and where their answers go; answered once every item is, or at the first failure.
    private final class Submission {
        var answers: [Answer?]
        var remaining: Int
        var continuation: CheckedContinuation<[Answer], any Error>?

        init(count: Int, continuation: CheckedContinuation<[Answer], any Error>) {
            answers = Array(repeating: nil, count: count)
            remaining = count
            self.continuation = continuation
        }

        func answer(_ answer: Answer, at index: Int) {
            answers[index] = answer
            remaining -= 1
            guard remaining == 0 else { return }
            continuation?.resume(returning: answers.map { $0! })
            continuation = nil
        }

        func fail(_ error: any Error) {
            continuation?.resume(throwing: error)
            continuation = nil
        }
    }

    private var waiting: [(item: Item, submission: Submission, index: Int)] = []
    private var committing = false
    private let maximumGroup: Int
    private let linger: Duration
    private let clock = ContinuousClock()
    private var lastGroupEnded: ContinuousClock.Instant?
    /// The wait for company in progress, ended early when the group fills.
    private var lingering: Task<Void, Never>?
    private let commit: @Sendable ([Item]) async throws -> [Answer]

    public init(
        maximumGroup: Int = .max, linger: Duration = .zero,
        commit: @escaping @Sendable ([Item]) async throws -> [Answer]
    ) {
        precondition(maximumGroup > 0, "a group holds at least one item")
        precondition(linger >= .zero, "a linger is not negative")
        self.maximumGroup = maximumGroup
        self.linger = linger
        self.commit = commit
    }

    /// How many items wait for the next commit (tests watch groups form with it).
    var waitingCount: Int { waiting.count }

    /// Commits `item` with whatever else is waiting, and returns its answer.
    public func submit(_ item: Item) async throws -> Answer {
        try await submit(contentsOf: [item])[0]
    }

    /// Commits `items` with whatever else is waiting (in as many groups as the bound needs), and returns their
    /// answers in order. If a group holding some of them fails, the error is thrown and those not yet committed
    /// are dropped; those already committed stay committed.
    public func submit(contentsOf items: [Item]) async throws -> [Answer] {
        guard !items.isEmpty else { return [] }
        return try await withCheckedThrowingContinuation { continuation in
            let submission = Submission(count: items.count, continuation: continuation)
            waiting.append(contentsOf: items.enumerated().map { (item: $1, submission: submission, index: $0) })
            if waiting.count >= maximumGroup { lingering?.cancel() }
            if !committing {
                committing = true
                Task { await drain() }
            }
        }
    }

    private func drain() async {
        // Only the first group waits: those that follow gathered behind a commit already.
        if let ended = lastGroupEnded, clock.now - ended < linger, waiting.count < maximumGroup {
            let wait = Task { [linger] in _ = try? await Task.sleep(for: linger) }
            lingering = wait
            await wait.value
            lingering = nil
        }
        while !waiting.isEmpty {
            let group = Array(waiting.prefix(maximumGroup))
            waiting.removeFirst(group.count)
            do {
                let answers = try await commit(group.map(\.item))
                precondition(answers.count == group.count, "a group commit must answer each of its items")
                for (answer, entry) in zip(answers, group) { entry.submission.answer(answer, at: entry.index) }
            } catch {
                let failed = Set(group.map { ObjectIdentifier($0.submission) })
                for entry in group { entry.submission.fail(error) }
                waiting.removeAll { failed.contains(ObjectIdentifier($0.submission)) }
            }
            lastGroupEnded = clock.now
        }
        committing = false
    }
}
