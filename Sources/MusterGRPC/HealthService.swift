import MusterConcurrency
import MusterProto

/// The standard `grpc.health.v1.Health` service (Check and Watch); "" names the whole server.
public final class HealthService: GRPCService {
    public typealias Status = Grpc_Health_V1_HealthCheckResponse.ServingStatus

    private let state = LockedValue<
        (statuses: [String: Status], watchers: [UInt64: (String, AsyncStream<Status>.Continuation)], nextID: UInt64)
    >(([:], [:], 0))

    public init() {
        state.withLock { $0.statuses[""] = .serving }
    }

    /// Sets a service's status and tells its watchers.
    public func setStatus(_ status: Status, for service: String = "") {
        let watchers = state.withLock { state in
            state.statuses[service] = status
            return state.watchers.values.filter { $0.0 == service }.map(\.1)
        }
        for watcher in watchers { watcher.yield(status) }
    }

    public func register(with router: inout GRPCRouter) {
        router.unary("/grpc.health.v1.Health/Check", Grpc_Health_V1_HealthCheckRequest.self) { [self] request, _ in
            guard let status = state.withLock({ $0.statuses[request.service] }) else {
                throw RPCError(code: .notFound, message: "unknown service \(request.service)")
            }
            return Grpc_Health_V1_HealthCheckResponse.with { $0.status = status }
        }
        router.serverStreaming(
            "/grpc.health.v1.Health/Watch", Grpc_Health_V1_HealthCheckRequest.self,
            Grpc_Health_V1_HealthCheckResponse.self
        ) { [self] request, writer, _ in
            let (stream, continuation) = AsyncStream<Status>.makeStream(bufferingPolicy: .bufferingNewest(1))
            let id = state.withLock { state in
                defer { state.nextID += 1 }
                state.watchers[state.nextID] = (request.service, continuation)
                continuation.yield(state.statuses[request.service] ?? .serviceUnknown)
                return state.nextID
            }
            defer { _ = state.withLock { $0.watchers.removeValue(forKey: id) } }
            var last: Status?
            for await status in stream where status != last {
                last = status
                try await writer.write(Grpc_Health_V1_HealthCheckResponse.with { $0.status = status })
            }
        }
    }
}
