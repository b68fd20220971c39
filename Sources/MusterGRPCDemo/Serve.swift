import ArgumentParser
import Crypto
import Foundation
import Logging
import MusterEcho
import MusterGRPC
import MusterIdentity
import X509

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve Health and Echo over mTLS; SIGHUP rotates the server's SVID.")

    @Option(help: "Directory for the demo CA, SVIDs and bundle (created if new).")
    var dataDir: String = "./muster-demo"

    @Option(help: "host:port to listen on (port 0 picks one).")
    var listen: String = "127.0.0.1:50051"

    @Option(help: "The SPIFFE trust domain of a new data directory.")
    var trustDomain: String = "demo.muster.local"

    @Option(help: "Client certificates: required, optional or none.")
    var clientCertificates: String = "required"

    @Flag(help: "Serve without TLS (benchmarks only).")
    var insecure = false

    @Option(help: "Completion queues the server polls, one thread each (benchmarks of the thread layout).")
    var completionQueues: Int = GRPCServer.Configuration.defaultCompletionQueues

    func run() async throws {
        LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
        let logger = Logger(label: "muster.grpc.demo")
        let signals = SignalWatcher()
        let files = DemoFiles(root: URL(filePath: dataDir))
        let pki = try DemoPKI.loadOrCreate(files: files, trustDomain: trustDomain)
        try pki.issueClientIdentity(files: files)
        let certificates = ServerCertificates(
            identity: try pki.issueServerIdentity(files: files), trustRootsPEM: try pki.bundlePEM,
            trustDomain: trustDomain)
        let policy: ClientCertificatePolicy
        switch clientCertificates {
        case "required": policy = .required
        case "optional": policy = .optional
        case "none": policy = .none
        default: throw ValidationError("--client-certificates must be required, optional or none")
        }
        let security: ServerSecurity = insecure ? .insecure : .tls(certificates, clientCertificates: policy)
        guard (1...64).contains(completionQueues) else {
            throw ValidationError("--completion-queues must be 1 to 64")
        }
        var configuration = GRPCServer.Configuration(listenAddress: listen, security: security)
        configuration.completionQueues = completionQueues
        let server = try GRPCServer(
            configuration: configuration,
            services: [HealthService(), EchoService()], logger: logger
        )

        signals.onReload = {
            do {
                certificates.update(identity: try pki.issueServerIdentity(files: files))
                logger.info("server SVID rotated")
            } catch {
                logger.error("rotation failed: \(error)")
            }
        }
        signals.onStop = { Task { await server.shutdown(grace: .seconds(5)) } }
        FileHandle.standardOutput.write(Data("listening on port \(server.port) (bundle: \(files.bundle.path))\n".utf8))
        await server.serve()
        logger.info("stopped")
    }
}

/// Watches SIGHUP (reload) and SIGTERM/SIGINT (stop).
final class SignalWatcher: @unchecked Sendable {
    // @unchecked: the handlers are set once before any signal can arrive and read on one serial queue.
    var onReload: @Sendable () -> Void = {}
    var onStop: @Sendable () -> Void = {}
    private var sources: [DispatchSourceSignal] = []

    init() {
        let queue = DispatchQueue(label: "muster.signals")
        for (number, reload) in [(SIGHUP, true), (SIGTERM, false), (SIGINT, false)] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            source.setEventHandler { [unowned self] in reload ? onReload() : onStop() }
            source.resume()
            sources.append(source)
        }
    }
}

/// The demo's CA, loaded from or written to the data directory.
struct DemoPKI: Sendable {
    let authority: CertificateAuthority
    let trustDomain: String

    var bundlePEM: String { get throws { try PEM.encode([authority.certificate]) } }

    /// Loads or creates the CA with Core's `RootCAStore` in `DIR/ca`, and refreshes `DIR/bundle.pem`.
    static func loadOrCreate(files: DemoFiles, trustDomain: String) throws -> DemoPKI {
        let (authority, bundle) = try RootCAStore(directory: files.caDirectory.path).loadOrCreate(
            trustDomain: trustDomain)
        try DemoFiles.write(bundle.pem(), to: files.bundle)
        return DemoPKI(authority: authority, trustDomain: trustDomain)
    }

    /// A fresh client SVID (1 h) for callers of the demo, written at every start.
    func issueClientIdentity(files: DemoFiles) throws {
        let client = try issue(segments: ["muster", "poller", "demo"])
        try DemoFiles.write(client.privateKeyPEM, to: files.clientKey, secret: true)
        try DemoFiles.write(client.certificateChainPEM, to: files.clientCertificate)
    }

    func issue(segments: [String], dnsNames: [String] = [], ipAddresses: [String] = []) throws -> CertifiedKey {
        let key = P256.Signing.PrivateKey()
        let id = try SPIFFEID(trustDomain: trustDomain, segments: segments)
        let leaf = try authority.issueLeaf(
            spiffeID: id, publicKey: .init(key.publicKey), dnsNames: dnsNames, ipAddresses: ipAddresses)
        return CertifiedKey(
            certificateChainPEM: try PEM.encode(authority.presentedChain(for: leaf)),
            privateKeyPEM: try PEM.encode(Certificate.PrivateKey(key)))
    }

    func issueServerIdentity(files: DemoFiles) throws -> CertifiedKey {
        let identity = try issue(
            segments: ["muster", "core"], dnsNames: ["localhost"], ipAddresses: ["127.0.0.1", "::1"])
        try DemoFiles.write(identity.privateKeyPEM, to: files.serverKey, secret: true)
        try DemoFiles.write(identity.certificateChainPEM, to: files.serverCertificate)
        return identity
    }
}
