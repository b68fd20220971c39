import Testing

@testable import MusterConcurrency

@Suite("group commit")
struct GroupCommitTests {
    struct Refused: Error {}

    /// A group commit whose commits wait at `gate` and record each group they were given.
    final class Recorder: Sendable {
        let gate = OneShot<Void>()
        let groups = LockedValue<[[Int]]>([])
        let commits: GroupCommit<Int, Int>

        init(maximumGroup: Int = .max) {
            let (gate, groups) = (gate, groups)
            commits = GroupCommit(maximumGroup: maximumGroup) { batch in
                groups.withLock { $0.append(batch) }
                await gate.value
                if batch.contains(13) { throw Refused() }
                return batch.map { $0 * 10 }
            }
        }

        /// Waits until `count` items wait behind the commit in flight.
        func queued(_ count: Int) async {
            while await commits.waitingCount < count { await Task.yield() }
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
}
