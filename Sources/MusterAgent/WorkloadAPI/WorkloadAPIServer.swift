import Foundation
import Logging
import MusterGRPC

#if canImport(Glibc)
    import Glibc
#endif

/// The agent's Workload API endpoint: the standard service on a Unix socket through Muster's gRPC bridge,
/// which reads each caller's peer credentials as it accepts. The socket is 0666 and its directory 0755: who
/// gets an identity is decided by the credentials, as in SPIRE, not by who can open the socket.
public enum WorkloadAPIServer {
    /// Most streams one uid may hold open (a workload that leaks streams cannot starve the others).
    static let streamsPerUID = 1024

    public static func start(socket path: String, identity: WorkloadIdentity, logger: Logger) throws -> GRPCServer {
        let directory = (path as NSString).deletingLastPathComponent
        var existing = stat()
        if stat(directory, &existing) != 0 {
            do {
                try FileManager.default.createDirectory(
                    atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
            } catch {
                throw AgentError("--workload-socket: cannot create \(directory): \(error.localizedDescription)")
            }
        } else if existing.st_mode & S_IFMT != S_IFDIR {
            throw AgentError("--workload-socket: \(directory) is not a directory")
        }
        var configuration = GRPCServer.Configuration(unixSocket: path, mode: 0o666)
        configuration.maxStreamsPerPeer = streamsPerUID
        configuration.completionQueues = 1
        let server: GRPCServer
        do {
            server = try GRPCServer(
                configuration: configuration,
                services: [WorkloadAPIService(identity: identity, logger: logger)], logger: logger)
        } catch {
            throw AgentError("--workload-socket: \(error)")
        }
        logger.notice("serving the SPIFFE Workload API", metadata: ["socket": "\(path)"])
        return server
    }
}
