import MusterGRPC
import ServiceLifecycle

/// A gRPC server as a `Service`: serves until graceful shutdown, then reports NOT_SERVING for `services` on
/// Health, stops accepting calls and gives in-flight calls `grace` before cancelling them.
public struct GRPCServerService: Service {
    let server: GRPCServer
    let health: HealthService
    let services: [String]
    let grace: Duration

    public init(server: GRPCServer, health: HealthService, services: [String], grace: Duration = .seconds(5)) {
        self.server = server
        self.health = health
        self.services = services
        self.grace = grace
    }

    public func run() async throws {
        await withGracefulShutdownHandler {
            await server.serve()
        } onGracefulShutdown: { [server, health, services, grace] in
            for service in services { health.setStatus(.notServing, for: service) }
            Task { await server.shutdown(grace: grace) }
        }
    }
}
