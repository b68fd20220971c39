import Foundation
import MusterEcho
import MusterGRPC
import MusterIdentity
import MusterProto

typealias EchoRequest = Muster_Testing_V1_EchoRequest
typealias EchoResponse = Muster_Testing_V1_EchoResponse

enum Echo {
    static let unary = "/muster.testing.v1.Echo/Unary"
    static let serverStream = "/muster.testing.v1.Echo/ServerStream"
    static let clientStream = "/muster.testing.v1.Echo/ClientStream"
    static let bidi = "/muster.testing.v1.Echo/Bidi"
}

/// A server on a free loopback port with Muster's mTLS, and clients for it.
struct Fixture {
    let pki: TestPKI
    let server: GRPCServer
    let certificates: ServerCertificates
    let serverID: SPIFFEID

    init(
        clientCertificates: ClientCertificatePolicy = .required,
        services: [any GRPCService]? = nil,
        maxMessageBytes: Int = 8 << 20,
        minimumPingInterval: Duration? = nil,
        completionQueues: Int? = nil
    ) throws {
        pki = try TestPKI()
        serverID = pki.id("/muster/core")
        certificates = ServerCertificates(
            identity: try pki.svid("/muster/core", serving: true), trustRootsPEM: pki.bundlePEM,
            trustDomain: pki.trustDomain)
        var configuration = GRPCServer.Configuration(
            listenAddress: "127.0.0.1:0", security: .tls(certificates, clientCertificates: clientCertificates))
        configuration.maxReceiveMessageBytes = maxMessageBytes
        configuration.maxSendMessageBytes = maxMessageBytes
        if let minimumPingInterval { configuration.minimumPingInterval = minimumPingInterval }
        if let completionQueues { configuration.completionQueues = completionQueues }
        server = try GRPCServer(configuration: configuration, services: services ?? [HealthService(), EchoService()])
    }

    var target: String { "127.0.0.1:\(server.port)" }

    /// A channel presenting an SVID for `path` (or `identity`), trusting the bundle, expecting Core's ID.
    func channel(
        as path: String? = "/muster/poller/edge-1", identity: CertifiedKey? = nil, trust: ServerTrust? = nil,
        expect: PeerPolicy? = nil, through target: String? = nil, keepalive: GRPCChannel.Keepalive? = nil
    ) throws -> GRPCChannel {
        let identity = try identity ?? path.map { try pki.svid($0) }
        let tls = ClientTLS(
            trust: trust ?? .bundle(rootsPEM: pki.bundlePEM), trustDomain: pki.trustDomain,
            serverPolicy: expect ?? .exactly(serverID, issuedByRoot: true), identity: identity)
        return try GRPCChannel(target: target ?? self.target, security: .tls(tls), keepalive: keepalive)
    }

    func stop() async { await server.shutdown(grace: .seconds(2)) }
}

func echo(_ text: String, repeat count: Int32 = 0, delayMs: Int32 = 0, failWith code: Int32 = 0, message: String = "")
    -> EchoRequest
{
    EchoRequest.with {
        $0.payload = Data(text.utf8)
        $0.repeat = count
        $0.delayMs = delayMs
        $0.failWithCode = code
        $0.failWithMessage = message
    }
}

/// Runs `body` and returns the RPCError it threw, or nil if it did not throw one.
func rpcError(_ body: () async throws -> Void) async -> RPCError? {
    do {
        try await body()
        return nil
    } catch let error as RPCError {
        return error
    } catch {
        return RPCError(code: .unknown, message: "not an RPCError: \(error)")
    }
}

/// Threads in this process right now.
func threadCount() -> Int {
    (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task").count) ?? -1
}
