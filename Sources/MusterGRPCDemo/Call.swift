import ArgumentParser
import Foundation
import MusterGRPC
import MusterIdentity
import MusterProto

struct Call: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Call Health or Echo on any gRPC server over (m)TLS; prints one JSON line.")

    @Option(help: "host:port of the server.") var target: String
    @Option(help: "PEM trust bundle to verify the server with.") var bundle: String?
    @Option(help: "sha256:HEX pin of a CA key in the server's chain (first contact).") var caPin: String?
    @Option(help: "Client certificate chain (PEM) for mTLS.") var cert: String?
    @Option(help: "Client private key (PEM) for mTLS.") var key: String?
    @Option(help: "The SPIFFE ID the server must present.") var expectServerID: String
    @Option(help: "health, unary, server-stream, client-stream or bidi.") var kind: String = "health"
    @Option(help: "Payload text for Echo.") var payload: String = "hello"
    @Option(help: "Messages to stream.") var count: Int = 3
    @Option(help: "Timeout in milliseconds.") var timeoutMs: Int = 5000

    func run() async throws {
        let trust: ServerTrust
        if let bundle {
            trust = .bundle(rootsPEM: try String(contentsOfFile: bundle, encoding: .utf8))
        } else if let caPin {
            trust = .pin(caPin)
        } else {
            throw ValidationError("give --bundle or --ca-pin: the server is never trusted on first use")
        }
        var identity: CertifiedKey?
        if let cert, let key {
            identity = CertifiedKey(
                certificateChainPEM: try String(contentsOfFile: cert, encoding: .utf8),
                privateKeyPEM: try String(contentsOfFile: key, encoding: .utf8))
        }
        let expected = try SPIFFEID(parsing: expectServerID)
        let channel = try GRPCChannel(
            target: target, security: .tls(ClientTLS(trust: trust, server: expected, identity: identity)))
        let options = CallOptions(metadata: ["x-echo": payload], timeout: .milliseconds(timeoutMs))
        typealias Request = Muster_Testing_V1_EchoRequest
        typealias Response = Muster_Testing_V1_EchoResponse
        let request = Request.with {
            $0.payload = Data(payload.utf8)
            $0.repeat = Int32(count)
        }
        var result: [String: Any] = ["ok": true]
        do {
            switch kind {
            case "health":
                let response = try await channel.unary(
                    "/grpc.health.v1.Health/Check", Grpc_Health_V1_HealthCheckRequest(),
                    as: Grpc_Health_V1_HealthCheckResponse.self, options: options)
                result["status"] = "\(response.status)"
            case "unary":
                let response = try await channel.unaryResponse(
                    "/muster.testing.v1.Echo/Unary", request, as: Response.self, options: options)
                result["payloads"] = [String(decoding: response.message.payload, as: UTF8.self)]
                result["peer"] = response.message.peerSpiffeID
                result["header"] = response.initialMetadata["x-echo"] ?? ""
            case "server-stream":
                let payloads: [String] = try await channel.serverStreaming(
                    "/muster.testing.v1.Echo/ServerStream", request, as: Response.self, options: options
                ) { stream in
                    var payloads: [String] = []
                    for try await response in stream {
                        payloads.append(String(decoding: response.payload, as: UTF8.self))
                    }
                    return payloads
                }
                result["payloads"] = payloads
            case "client-stream":
                let response = try await channel.clientStreaming(
                    "/muster.testing.v1.Echo/ClientStream", as: Response.self, options: options
                ) { (writer: ClientRequestWriter<Request>) in
                    for _ in 0..<count { try await writer.write(request) }
                }
                result["count"] = Int(response.count)
            case "bidi":
                let payloads: [String] = try await channel.bidirectional(
                    "/muster.testing.v1.Echo/Bidi", as: Response.self, options: options
                ) { (writer: ClientRequestWriter<Request>, responses) in
                    var payloads: [String] = []
                    var iterator = responses.makeAsyncIterator()
                    for index in 0..<count {
                        try await writer.write(Request.with { $0.payload = Data("\(payload)-\(index)".utf8) })
                        if let response = try await iterator.next() {
                            payloads.append(String(decoding: response.payload, as: UTF8.self))
                        }
                    }
                    try await writer.finish()
                    while try await iterator.next() != nil {}
                    return payloads
                }
                result["payloads"] = payloads
            default:
                throw ValidationError("unknown --kind \(kind)")
            }
        } catch let error as RPCError {
            result = ["ok": false, "code": error.code.description, "message": error.message]
        }
        let json = try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys])
        print(String(decoding: json, as: UTF8.self))
        if result["ok"] as? Bool != true { throw ExitCode(1) }
    }
}
