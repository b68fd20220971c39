import Foundation
import MusterConcurrency
import MusterProto
import Testing

@testable import MusterGRPC

/// A service whose handler waits until cancelled and reports that it was.
final class HangService: GRPCService {
    let cancelled = LockedValue<Int>(0)
    let started = LockedValue<Int>(0)

    func register(with router: inout GRPCRouter) {
        router.unary("/muster.testing.v1.Echo/Unary", EchoRequest.self) { [self] request, context in
            started.withLock { $0 += 1 }
            do {
                try await Task.sleep(for: .seconds(30))
            } catch {
                cancelled.withLock { $0 += 1 }
                throw error
            }
            return EchoResponse()
        }
    }

    enum Counter { case started, cancelled }

    func waitFor(_ counter: Counter, atLeast count: Int) async -> Bool {
        for _ in 0..<200 {
            let value = counter == .started ? started.withLock { $0 } : cancelled.withLock { $0 }
            if value >= count { return true }
            try? await Task.sleep(for: .milliseconds(25))
        }
        return false
    }
}

@Suite("failures the bridge must survive")
struct FailureTests {
    @Test("an expired deadline gives DEADLINE_EXCEEDED and cancels the handler")
    func deadline() async throws {
        let hang = HangService()
        let fixture = try Fixture(services: [hang, HealthService()])
        let channel = try fixture.channel()
        // Connect first, so the deadline is spent in the handler rather than in the TLS handshake.
        _ = try await channel.unary(
            "/grpc.health.v1.Health/Check", MusterProtoHealth.Request(), as: MusterProtoHealth.Response.self)
        let error = await rpcError {
            _ = try await channel.unary(
                Echo.unary, echo("x"), as: EchoResponse.self, options: .init(timeout: .milliseconds(800)))
        }
        #expect(error?.code == .deadlineExceeded)
        #expect(await hang.waitFor(.started, atLeast: 1))
        #expect(await hang.waitFor(.cancelled, atLeast: 1))
        await fixture.stop()
    }

    @Test("the handler sees the caller's deadline")
    func deadlineVisible() async throws {
        let seen = LockedValue<Date?>(nil)
        struct DeadlineService: GRPCService {
            let seen: @Sendable (Date?) -> Void
            func register(with router: inout GRPCRouter) {
                router.unary("/muster.testing.v1.Echo/Unary", EchoRequest.self) { _, context in
                    seen(context.deadline)
                    return EchoResponse()
                }
            }
        }
        let fixture = try Fixture(services: [DeadlineService { date in seen.withLock { $0 = date } }])
        let channel = try fixture.channel()
        _ = try await channel.unary(Echo.unary, echo("x"), as: EchoResponse.self, options: .init(timeout: .seconds(20)))
        let remaining = try #require(seen.withLock { $0 }).timeIntervalSinceNow
        #expect(remaining > 15 && remaining <= 20)
        _ = try await channel.unary(Echo.unary, echo("x"), as: EchoResponse.self)
        #expect(seen.withLock { $0 } == nil)
        await fixture.stop()
    }

    @Test("cancelling the caller's task cancels the call and the handler")
    func clientCancellation() async throws {
        let hang = HangService()
        let fixture = try Fixture(services: [hang])
        let channel = try fixture.channel()
        let task = Task { await rpcError { _ = try await channel.unary(Echo.unary, echo("x"), as: EchoResponse.self) } }
        #expect(await hang.waitFor(.started, atLeast: 1))
        task.cancel()
        let error = await task.value
        #expect(error?.code == .cancelled)
        #expect(await hang.waitFor(.cancelled, atLeast: 1))
        await fixture.stop()
    }

    @Test("a message over the size limit gives RESOURCE_EXHAUSTED, and the server keeps serving")
    func oversized() async throws {
        let fixture = try Fixture(maxMessageBytes: 1 << 20)
        let channel = try fixture.channel()
        let big = EchoRequest.with { $0.payload = Data(count: 2 << 20) }
        let error = await rpcError { _ = try await channel.unary(Echo.unary, big, as: EchoResponse.self) }
        #expect(error?.code == .resourceExhausted)
        let ok = try await channel.unary(Echo.unary, echo("after"), as: EchoResponse.self)
        #expect(String(decoding: ok.payload, as: UTF8.self) == "after")
        await fixture.stop()
    }

    @Test("an unknown method gives UNIMPLEMENTED")
    func unknownMethod() async throws {
        let fixture = try Fixture()
        let channel = try fixture.channel()
        let error = await rpcError {
            _ = try await channel.unary("/muster.testing.v1.Echo/Nope", echo("x"), as: EchoResponse.self)
        }
        #expect(error?.code == .unimplemented)
        #expect(error?.message.contains("/muster.testing.v1.Echo/Nope") == true)
        await fixture.stop()
    }

    @Test("a request that is not the method's message gives INVALID_ARGUMENT")
    func malformedRequest() async throws {
        let fixture = try Fixture()
        let channel = try fixture.channel()
        // Field 1 declared length-delimited with a length far past the end of the message.
        let error = await rpcError {
            _ = try await channel.unaryBytes(Echo.unary, [0x0A, 0x7F, 0x01], options: .init())
        }
        #expect(error?.code == .invalidArgument)
        await fixture.stop()
    }

    @Test("invalid request metadata is refused before anything is sent")
    func badMetadata() async throws {
        let fixture = try Fixture()
        let channel = try fixture.channel()
        var metadata = Metadata()
        metadata.add("Bad Key", "v")
        let error = await rpcError {
            _ = try await channel.unary(
                Echo.unary, echo("x"), as: EchoResponse.self, options: .init(metadata: metadata))
        }
        #expect(error?.code == .invalidArgument)
        await fixture.stop()
    }
}
