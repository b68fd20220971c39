import Dispatch
import Foundation
import Logging
import MusterGRPC

/// The poller's gRPC endpoint on its SVID (client certificates optional: agents join before they hold one).
/// This build serves Health; `EdgeOnboarding` comes with the relay.
public enum PollerServer {
    public static func start(state: PollerState, listen: String, logger: Logger) throws -> GRPCServer {
        let identity = CertifiedKey(certificateChainPEM: try state.read(state.svidPath), privateKeyPEM: try state.read(state.svidKeyPath))
        let certificates = ServerCertificates(identity: identity, trustRootsPEM: try state.read(state.bundlePath))
        let health = HealthService()
        return try GRPCServer(
            configuration: .init(listenAddress: listen, security: .tls(certificates, clientCertificates: .optional)),
            services: [health], logger: logger
        )
    }

    /// Serves until SIGTERM or SIGINT, then shuts down gracefully.
    public static func serveUntilSignalled(_ server: GRPCServer) async {
        signal(SIGTERM, SIG_IGN)
        signal(SIGINT, SIG_IGN)
        let sources = [SIGTERM, SIGINT].map { DispatchSource.makeSignalSource(signal: $0, queue: .global()) }
        for source in sources {
            source.setEventHandler { Task { await server.shutdown(grace: .seconds(5)) } }
            source.resume()
        }
        await server.serve()
        for source in sources { source.cancel() }
    }
}
