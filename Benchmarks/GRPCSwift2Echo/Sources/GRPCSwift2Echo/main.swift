// muster.testing.v1.Echo/Unary on grpc-swift-2 with its NIO transport, mTLS requiring a client certificate.
// Usage: GRPCSwift2Echo PORT SERVER_CERT SERVER_KEY BUNDLE
import GRPCCore
import GRPCNIOTransportHTTP2
import GRPCProtobuf
import MusterProto

struct EchoService: RegistrableRPCService {
    func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
        router.registerHandler(
            forMethod: MethodDescriptor(fullyQualifiedService: "muster.testing.v1.Echo", method: "Unary"),
            deserializer: ProtobufDeserializer<Muster_Testing_V1_EchoRequest>(),
            serializer: ProtobufSerializer<Muster_Testing_V1_EchoResponse>()
        ) { request, context in
            let message = try await request.messages.reduce(into: Muster_Testing_V1_EchoRequest()) { $0 = $1 }
            return StreamingServerResponse(single: ServerResponse(message: Muster_Testing_V1_EchoResponse.with { $0.payload = message.payload }))
        }
    }
}

let arguments = CommandLine.arguments
guard arguments.count == 5, let port = Int(arguments[1]) else {
    print("usage: GRPCSwift2Echo PORT SERVER_CERT SERVER_KEY BUNDLE")
    exit(2)
}
let server = GRPCServer(
    transport: .http2NIOPosix(
        address: .ipv4(host: "127.0.0.1", port: port),
        transportSecurity: .mTLS(
            certificateChain: [.file(path: arguments[2], format: .pem)],
            privateKey: .file(path: arguments[3], format: .pem)
        ) { config in
            config.trustRoots = .certificates([.file(path: arguments[4], format: .pem)])
            config.clientCertificateVerification = .noHostnameVerification
        }
    ),
    services: [EchoService()]
)
print("listening on port \(port)")
try await server.serve()

import Foundation
