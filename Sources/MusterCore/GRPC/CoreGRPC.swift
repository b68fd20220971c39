import Crypto
import Foundation
import Logging
import MusterEdge
import MusterGRPC
import MusterIdentity
import MusterRuntime
import ServiceLifecycle
import X509

/// Core's gRPC endpoint for pollers: TLS with Core's own SVID (`spiffe://TD/muster/core`, DNS/IP SANs for
/// the advertised host), client certificates optional (pollers attest with a join token before they hold
/// one), Health, and the SVID renewed at half-life.
public struct CoreGRPC: Service, CustomStringConvertible {
    public let server: GRPCServer
    let certificates: ServerCertificates
    let health: HealthService
    let identity: CoreIdentity
    let lifetime: TimeInterval
    let logger: Logger
    public var description: String { "CoreGRPC(port \(server.port))" }

    public init(
        listen: String, identity: CoreIdentity, lifetime: TimeInterval, services: [any GRPCService] = [],
        logger: Logger,
        refusals: (@Sendable (CallRefusal) -> Void)? = nil
    ) async throws {
        let health = HealthService()
        health.setStatus(.serving, for: "muster.onboarding.v1.CoreOnboarding")
        let certificates = ServerCertificates(
            identity: try await Self.issue(identity: identity, lifetime: lifetime),
            trustRootsPEM: try identity.bundle.pem(),
            trustDomain: identity.trustDomain)
        var configuration = GRPCServer.Configuration(
            listenAddress: listen, security: .tls(certificates, clientCertificates: .optional))
        configuration.refusalObserver = refusals
        self.server = try GRPCServer(configuration: configuration, services: [health] + services, logger: logger)
        self.certificates = certificates
        self.health = health
        self.identity = identity
        self.lifetime = lifetime
        self.logger = logger
    }

    /// A fresh serving SVID for Core: a new P-256 key, signed by the identity authority, with SANs for the
    /// advertised host.
    static func issue(identity: CoreIdentity, lifetime: TimeInterval) async throws -> CertifiedKey {
        let key = P256.Signing.PrivateKey()
        let host = (try? HostPort.parse(identity.advertise).host) ?? "localhost"
        let advertised = HostPort.subjectAltNames(host: host)
        let issued = try await identity.authority.mintX509SVID(
            SVIDRequest(
                spiffeID: try MusterIDs.core(trustDomain: identity.trustDomain),
                csrDER: try CSRBuilder.make(key: key, label: "muster core"),
                dnsNames: Array(Set(["localhost"] + advertised.dnsNames)).sorted(),
                ipAddresses: Array(Set(["127.0.0.1"] + advertised.ipAddresses)).sorted(), ttl: lifetime
            ))
        return CertifiedKey(
            certificateChainPEM: try PEM.encode(issued.chain),
            privateKeyPEM: try PEM.encode(Certificate.PrivateKey(key))
        )
    }

    /// Serves (the shared `GRPCServerService`: NOT_SERVING, then a 5 s grace on shutdown) while renewing the SVID.
    public func run() async throws {
        let serving = GRPCServerService(
            server: server, health: health, services: ["muster.onboarding.v1.CoreOnboarding"])
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await serving.run() }
            group.addTask { await renewLoop() }
            try await group.next()
            group.cancelAll()
        }
    }

    /// Renews Core's serving SVID at half-life; new handshakes pick it up, open connections keep theirs.
    func renewLoop() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: .seconds(lifetime / 2))
            if Task.isCancelled { return }
            do {
                certificates.update(identity: try await Self.issue(identity: identity, lifetime: lifetime))
                logger.info("renewed Core's serving SVID")
            } catch {
                logger.error("cannot renew Core's serving SVID", metadata: ["error": "\(error)"])
            }
        }
    }
}
