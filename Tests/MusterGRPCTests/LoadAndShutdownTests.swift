import Foundation
import MusterConcurrency
import MusterEcho
import Testing

@testable import MusterGRPC

@Suite("load and shutdown")
struct LoadAndShutdownTests {
    @Test(
        "1,000 concurrent calls all succeed without a thread per call, on one completion queue or several",
        arguments: [1, 3])
    func thousandConcurrentCalls(queues: Int) async throws {
        let fixture = try Fixture(completionQueues: queues)
        let channel = try fixture.channel()
        _ = try await channel.unary(Echo.unary, echo("warm-up"), as: EchoResponse.self)
        let threadsBefore = threadCount()
        let results = try await withThrowingTaskGroup(of: Bool.self) { group in
            for index in 0..<1000 {
                group.addTask {
                    let response = try await channel.unary(
                        Echo.unary, echo("n\(index)", delayMs: 20), as: EchoResponse.self)
                    return String(decoding: response.payload, as: UTF8.self) == "n\(index)"
                }
            }
            return try await group.reduce(into: [Bool]()) { $0.append($1) }
        }
        #expect(results.count == 1000)
        #expect(results.allSatisfy { $0 })
        // gRPC core and the Swift runtime keep small pools; a thread per call would add hundreds.
        #expect(threadCount() - threadsBefore < 32)
        await fixture.stop()
    }

    @Test("a server polls one completion queue per two cores unless MUSTER_GRPC_COMPLETION_QUEUES asks for 1 to 64")
    func completionQueueCount() {
        let count = GRPCServer.Configuration.completionQueues(environment:cores:)
        #expect(count([:], 1) == 1)
        #expect(count([:], 2) == 1)
        #expect(count([:], 3) == 1)
        #expect(count([:], 16) == 8)
        #expect(count(["MUSTER_GRPC_COMPLETION_QUEUES": "3"], 2) == 3)
        #expect(GRPCServer.Configuration.refusedCompletionQueues(["MUSTER_GRPC_COMPLETION_QUEUES": "3"]) == nil)
        #expect(GRPCServer.Configuration.refusedCompletionQueues([:]) == nil)
        for refused in ["0", "65", "-1", "two", ""] {
            let environment = ["MUSTER_GRPC_COMPLETION_QUEUES": refused]
            #expect(count(environment, 8) == 4, "\(refused)")
            #expect(GRPCServer.Configuration.refusedCompletionQueues(environment) == refused)
        }
    }

    @Test("graceful shutdown lets in-flight calls finish and then refuses new ones")
    func gracefulShutdown() async throws {
        let hang = CountingEcho()
        let fixture = try Fixture(services: [hang])
        let channel = try fixture.channel()
        _ = try await channel.unary(Echo.unary, echo("connect"), as: EchoResponse.self)
        let calls = (0..<20).map { index in
            Task { try await channel.unary(Echo.unary, echo("g\(index)", delayMs: 400), as: EchoResponse.self) }
        }
        // Shut down only once all 20 calls are inside their handlers.
        for _ in 0..<400 where hang.started.withLock({ $0 }) < 21 { try await Task.sleep(for: .milliseconds(10)) }
        #expect(hang.started.withLock { $0 } == 21)
        await fixture.server.shutdown(grace: .seconds(5))
        for (index, call) in calls.enumerated() {
            let response = try await call.value
            #expect(String(decoding: response.payload, as: UTF8.self) == "g\(index)")
        }
        let late = await rpcError {
            _ = try await channel.unary(
                Echo.unary, echo("late"), as: EchoResponse.self, options: .init(timeout: .seconds(2)))
        }
        #expect(late?.code == .unavailable || late?.code == .deadlineExceeded)
    }

    @Test("calls still running after the grace period are cancelled and shutdown completes")
    func shutdownCancelsStragglers() async throws {
        let hang = HangService()
        let fixture = try Fixture(services: [hang])
        let channel = try fixture.channel()
        let calls = (0..<5).map { _ in
            Task { await rpcError { _ = try await channel.unary(Echo.unary, echo("x"), as: EchoResponse.self) } }
        }
        #expect(await hang.waitFor(.started, atLeast: 5))
        let began = ContinuousClock.now
        await fixture.server.shutdown(grace: .milliseconds(200))
        #expect(ContinuousClock.now - began < .seconds(10))
        #expect(hang.cancelled.withLock { $0 } == 5)
        for call in calls {
            let error = await call.value
            #expect(error != nil)
        }
    }

    @Test("serve() returns once the server has shut down")
    func serveReturns() async throws {
        let fixture = try Fixture()
        async let served: Void = fixture.server.serve()
        await fixture.server.shutdown()
        await served
    }
}

/// Echo's unary method, counting the calls that reached it.
final class CountingEcho: GRPCService {
    let started = LockedValue(0)

    func register(with router: inout GRPCRouter) {
        router.unary("/muster.testing.v1.Echo/Unary", EchoRequest.self) { [self] request, _ in
            started.withLock { $0 += 1 }
            try await Task.sleep(for: .milliseconds(Int(request.delayMs)))
            return EchoResponse.with { $0.payload = request.payload }
        }
    }
}
