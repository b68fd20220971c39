import Testing

@testable import MusterConcurrency

/// Each test fails after a minute rather than hang when a group never commits.
@Suite("group commit", .timeLimit(.minutes(1)))
struct GroupCommitTests {
    struct Refused: Error {}

    /// A group commit whose commits wait at `gate` and record each group they were given.
    final class Recorder: Sendable {
        let gate = OneShot<Void>()
        let groups = LockedValue<[[Int]]>([])
        let commits: GroupCommit<Int, Int>

        init(maximumGroup: Int = .max, linger: Duration = .zero) {
            let (gate, groups) = (gate, groups)
            commits = GroupCommit(maximumGroup: maximumGroup, linger: linger) { batch in
                groups.withLock { $0.append(batch) }
                await gate.value
                if batch.contains(13) { throw Refused() }
                return batch.map { $0 * 10 }
            }
        }

        /// Waits until `count` items wait behind the commit in flight (an issue after 10 s, rather than a test that
        /// never ends when they do not).
        func queued(_ count: Int) async {
            let deadline = ContinuousClock.now + .seconds(10)
            while await commits.waitingCount < count {
                guard ContinuousClock.now < deadline else {
                    Issue.record("\(count) items never waited together")
                    return
                }
                await Task.yield()
            }
        }
    }

    @Test("a lone item commits at once; items arriving during a commit are the next group, each with its own answer")
    func grouping() async throws {
        let recorder = Recorder()
        let first = Task { try await recorder.commits.submit(1) }
        while recorder.groups.withLock({ $0.isEmpty }) { await Task.yield() }
        let rest = (2...5).map { item in Task { try await recorder.commits.submit(item) } }
        await recorder.queued(4)
        recorder.gate.fulfil(())
        #expect(try await first.value == 10)
        var answers: [Int] = []
        for task in rest { answers.append(try await task.value) }
        #expect(answers == [20, 30, 40, 50])
        let groups = recorder.groups.withLock { $0 }
        #expect(groups.count == 2 && groups.first == [1] && Set(groups.last ?? []) == [2, 3, 4, 5])
    }

    @Test("a group holds at most its maximum; the rest wait for the next, in order")
    func bounded() async throws {
        let recorder = Recorder(maximumGroup: 2)
        let first = Task { try await recorder.commits.submit(1) }
        while recorder.groups.withLock({ $0.isEmpty }) { await Task.yield() }
        var rest: [Task<Int, any Error>] = []
        for item in 2...6 {
            rest.append(Task { try await recorder.commits.submit(item) })
            await recorder.queued(item - 1)
        }
        recorder.gate.fulfil(())
        #expect(try await first.value == 10)
        for (index, task) in rest.enumerated() { #expect(try await task.value == (index + 2) * 10) }
        #expect(recorder.groups.withLock { $0 } == [[1], [2, 3], [4, 5], [6]])
    }

    @Test("a commit that throws fails every item of its group and no other")
    func failure() async throws {
        let recorder = Recorder()
        let first = Task { try await recorder.commits.submit(7) }
        while recorder.groups.withLock({ $0.isEmpty }) { await Task.yield() }
        let refused = Task { try await recorder.commits.submit(13) }
        let alongside = Task { try await recorder.commits.submit(8) }
        await recorder.queued(2)
        recorder.gate.fulfil(())
        #expect(try await first.value == 70)
        await #expect(throws: Refused.self) { try await refused.value }
        await #expect(throws: Refused.self) { try await alongside.value }
        // The group after a failed one commits as usual.
        #expect(try await recorder.commits.submit(9) == 90)
    }

    @Test("one caller's items share a group, answered in order; a group failing part of them fails the caller")
    func contentsOf() async throws {
        let recorder = Recorder(maximumGroup: 3)
        recorder.gate.fulfil(())
        #expect(try await recorder.commits.submit(contentsOf: [1, 2, 3, 4]) == [10, 20, 30, 40])
        #expect(try await recorder.commits.submit(contentsOf: []) == [])
        await #expect(throws: Refused.self) { try await recorder.commits.submit(contentsOf: [5, 6, 7, 13, 8]) }
        // [5, 6, 7] committed; the failed group held 13 and 8; nothing of that caller is left to commit after it.
        #expect(try await recorder.commits.submit(9) == 90)
        #expect(recorder.groups.withLock { $0 } == [[1, 2, 3], [4], [5, 6, 7], [13, 8], [9]])
    }

    @Test("while commits are busy a group waits for company, and commits as soon as it is full")
    func lingering() async throws {
        let recorder = Recorder(maximumGroup: 3, linger: .seconds(30))
        recorder.gate.fulfil(())
        let clock = ContinuousClock()
        let start = clock.now
        // After a quiet spell: at once.
        #expect(try await recorder.commits.submit(1) == 10)
        // Right after a group: the next waits for company, here until it is full, far short of the linger.
        var rest: [Task<Int, any Error>] = []
        for item in 2...4 {
            rest.append(Task { try await recorder.commits.submit(item) })
            if item < 4 { await recorder.queued(item - 1) }
        }
        for (index, task) in rest.enumerated() { #expect(try await task.value == (index + 2) * 10) }
        #expect(clock.now - start < .seconds(20))
        #expect(recorder.groups.withLock { $0 } == [[1], [2, 3, 4]])
    }

    @Test("a lone item after a group waits no longer than the linger, then commits alone")
    func lingerEnds() async throws {
        // Whether the second item came within the linger depends on how fast this thread runs, so the test asserts
        // only that the wait ends (a group that waited for company until full would never commit here, and the
        // suite's time limit would fail it); that a group does wait is `lingering`'s.
        let recorder = Recorder(linger: .seconds(1))
        recorder.gate.fulfil(())
        let clock = ContinuousClock()
        #expect(try await recorder.commits.submit(1) == 10)
        let start = clock.now
        #expect(try await recorder.commits.submit(2) == 20)
        #expect(clock.now - start < .seconds(10))
        #expect(recorder.groups.withLock { $0 } == [[1], [2]])
    }
}
