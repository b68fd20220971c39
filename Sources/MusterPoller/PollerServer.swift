import Foundation
import Logging
import MusterDatabase
import MusterGRPC
import MusterIdentity
import MusterRuntime

/// The running poller: its gRPC endpoint for agents (TLS with its SVID; client certificates optional, since
/// agents join before they hold one) serving Health and `EdgeOnboarding` (joins, renewals, self-enrollment), and its link to Core.
public struct PollerServer: Sendable {
    public let server: GRPCServer
    let uplink: PollerUplink
    let cache: PollerCache
    let health: HealthService

    /// Opens the cache and binds `listen`; `agentSVIDTTL` is the lifetime of the SVIDs it issues.
    public static func start(
        state: PollerState, listen: String, agentSVIDTTL: TimeInterval,
        enrollment: EnrollmentSettings = EnrollmentSettings(), logger: Logger
    ) async throws -> PollerServer {
        let manifest = try state.manifest()
        let identity = try PollerIdentity(state: state)
        let cache = PollerCache(path: state.cachePath, logger: logger)
        do {
            try await cache.open()
        } catch {
            await cache.close()
            throw PollerError("cannot open the package cache \(state.cachePath): \(error)")
        }
        let outbox = OutboxSignal()
        let health = HealthService()
        health.setStatus(.serving, for: "muster.onboarding.v1.EdgeOnboarding")
        let standing = PollerStanding(health: health)
        if let revoked = try? await cache.revokedByCore() {
            standing.markRevoked()
            logger.critical(
                "Core revoked this poller; it does not onboard agents", metadata: ["revoked_at": "\(revoked)"])
        }
        let edge = EdgeOnboardingService(
            identity: identity, cache: cache, outbox: outbox, standing: standing, svidTTL: agentSVIDTTL, logger: logger,
            enrollment: enrollment)
        var configuration = GRPCServer.Configuration(
            listenAddress: listen, security: .tls(identity.serverCertificates, clientCertificates: .optional))
        // A certificate refused here (forged, misbound, another poller's) reaches Core's audit log like a refused join.
        configuration.refusalObserver = { refusal in
            Task {
                try? await cache.queueRefusal(
                    packageID: nil,
                    reason: TextRules.printable(
                        "certificate refused at \(refusal.method): \(refusal.reason)", limit: 200),
                    from: refusal.peerAddress, at: Clock.nowMillis())
                outbox.ring()
            }
        }
        let server = try GRPCServer(configuration: configuration, services: [health, edge], logger: logger)
        let uplink = PollerUplink(
            identity: identity, cache: cache, outbox: outbox, standing: standing, core: manifest.connect, logger: logger
        )
        return PollerServer(server: server, uplink: uplink, cache: cache, health: health)
    }

    /// Serves agents and runs the link to Core as services under one group until SIGTERM or SIGINT, then shuts
    /// down gracefully (the loops first, then the server) and closes the cache. The link's loops may end on
    /// their own (a poller revoked by Core stops them) while serving goes on. Every 30 s, free memory above
    /// 1 MiB goes back to the system (`FreeMemoryReturn`).
    public func run(logger: Logger) async throws {
        let uplink = self.uplink
        try await Runtime.run(
            [
                .init(
                    GRPCServerService(
                        server: server, health: health, services: ["muster.onboarding.v1.EdgeOnboarding"]),
                    name: "edge-onboarding"),
                .init(LoopService { await uplink.watchLoop() }, name: "package-stream", mayEnd: true),
                .init(LoopService { await uplink.outboxLoop() }, name: "outbox", mayEnd: true),
                .init(LoopService { await uplink.renewLoop() }, name: "renewal", mayEnd: true),
                .init(FreeMemoryReturn(), name: "memory-return"),
            ], logger: logger)
        await cache.close()
    }
}
