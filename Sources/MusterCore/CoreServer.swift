import Foundation
import Hummingbird
import Logging
import MusterIdentity
import MusterRuntime
import MusterStore
import ServiceLifecycle

/// Everything `muster-core serve` runs, assembled from a configuration and run as one service group
/// with graceful shutdown on SIGTERM/SIGINT.
public enum CoreServer {
    /// Prepares the data directory (CA, token key, database, admin token) and returns what serving needs.
    public static func prepare(_ configuration: CoreConfiguration, logger: Logger) async throws -> (
        Store, CoreIdentity, TokenSealer
    ) {
        let directory = configuration.dataDirectory
        do { try SecureFile.makeDirectory(directory) } catch {
            throw CoreError(.dataDirectory, "cannot create data directory \(directory): \(error)")
        }
        let authority = try EmbeddedAuthority(directory: directory + "/ca", trustDomain: configuration.trustDomain)
        let identity = CoreIdentity(
            authority: authority, bundle: authority.bundle(), advertise: configuration.advertise)
        let sealer = try TokenSealer.load(
            base64: configuration.tokenKeyBase64, file: configuration.tokenKeyFile ?? directory + "/token.key")
        let store = try await openStore(configuration, logger: logger)
        let tokenPath = directory + "/admin.token"
        if !FileManager.default.fileExists(atPath: tokenPath) {
            let token = try await OperatorTokens.mint(
                name: "admin", scopes: [.admin], createdBy: "system:setup", store: store)
            try SecureFile.write(token + "\n", to: tokenPath, mode: 0o600)
            logger.notice("created the admin token (shown nowhere else)", metadata: ["path": "\(tokenPath)"])
        }
        return (store, identity, sealer)
    }

    /// The data directory and the migrated store, without the CA (enough for `token create`).
    public static func openStore(_ configuration: CoreConfiguration, logger: Logger) async throws -> Store {
        let directory = configuration.dataDirectory
        do { try SecureFile.makeDirectory(directory) } catch {
            throw CoreError(.dataDirectory, "cannot create data directory \(directory): \(error)")
        }
        let store = Store(
            location: configuration.database, connections: configuration.databaseConnections, logger: logger)
        do {
            try await store.migrate()
        } catch let error as StoreError {
            await store.shutdown()
            throw CoreError(.invalidConfiguration, "database \(configuration.database): \(error.message)")
        }
        return store
    }

    public static func run(_ configuration: CoreConfiguration, logger: Logger) async throws {
        let (store, identity, sealer) = try await prepare(configuration, logger: logger)
        let metrics = CoreMetrics()
        let hub = EventHub(
            store: store, safetyPoll: .milliseconds(Int64(configuration.eventPollInterval * 1000)),
            listed: PackageService.streamedEvents, logger: logger)
        let auditor = RefusalAuditor(
            store: store, logger: logger, burst: max(20, configuration.refusalAuditPerMinute),
            perMinute: configuration.refusalAuditPerMinute,
            globalPerMinute: max(600, configuration.refusalAuditPerMinute * 4))
        let packages = PackageService(
            store: store, sealer: sealer, identity: identity, events: hub, metrics: metrics, logger: logger,
            leafTTL: configuration.leafTTL, pollerCATTL: configuration.pollerCATTL, auditor: auditor)
        let api = CoreAPI(
            packages: packages, hub: hub, metrics: metrics,
            limiter: RateLimiter(perMinute: configuration.createRatePerMinute),
            identity: identity, logger: logger,
            sessions: ConsoleSessions(
                store: store, auditor: auditor, logger: logger, idleTimeout: configuration.consoleIdleTimeout))
        let (host, port) = try HostPort.parse(configuration.httpListen)
        let app = Application(
            router: api.router(),
            configuration: .init(address: .hostname(host, port: port), serverName: "muster-core"),
            onServerRunning: { channel in
                logger.notice(
                    "HTTP API listening", metadata: ["address": "\(channel.localAddress?.description ?? "?")"])
            },
            logger: logger
        )
        let grpc = try await CoreGRPC(
            listen: configuration.grpcListen, identity: identity, lifetime: configuration.leafTTL,
            services: [CoreOnboardingService(packages: packages)], logger: logger,
            refusals: { packages.auditRefusedCall($0) })
        logger.notice(
            "gRPC listening",
            metadata: [
                "port": "\(grpc.server.port)", "advertise": "\(configuration.advertise)",
                "trust_domain": "\(identity.trustDomain)", "ca_pin": "\(identity.caPin)",
                "database": "\(configuration.database)",
            ])
        var services: [Runtime.Part] = [
            // Stopped after the servers (services stop in reverse order), so the last contacts are written.
            .init(packages.contacts, name: "poller-contacts"),
            .init(hub, name: "event-listener", mayEnd: true), .init(packages.feed, name: "package-feed"),
            .init(app, name: "http-api"), .init(grpc, name: "grpc"),
            .init(auditor, name: "refusal-auditor"),
            .init(Reaper(packages: packages, interval: configuration.reaperInterval, logger: logger), name: "reaper"),
        ]
        if let nats = configuration.natsURL {
            _ = try NATSPublisher.parse(nats)
            let publisher = NATSPublisher(url: nats, hub: hub, metrics: metrics, logger: logger)
            try await publisher.prepareCursor()
            services.append(.init(publisher, name: "nats"))
        }
        try await Runtime.run(services, logger: logger)
        await store.shutdown()
        logger.notice("muster-core stopped")
    }
}
