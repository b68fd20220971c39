import MusterGRPC
import MusterProto

import struct Foundation.Data

/// `muster.testing.v1.Echo`: echoes payloads over every call kind, and fails or delays on request.
public struct EchoService: GRPCService {
    public typealias Request = Muster_Testing_V1_EchoRequest
    public typealias Response = Muster_Testing_V1_EchoResponse

    let policy: PeerPolicy

    public init(policy: PeerPolicy = .anyone) { self.policy = policy }

    public func register(with router: inout GRPCRouter) {
        router.unary("/muster.testing.v1.Echo/Unary", Request.self, policy: policy) { request, context in
            try await Self.obey(request)
            Self.echoMetadata(context)
            return try Self.response(request.payload, context: context)
        }
        router.serverStreaming("/muster.testing.v1.Echo/ServerStream", Request.self, Response.self, policy: policy) {
            request, writer, context in
            try await Self.obey(request)
            for _ in 0..<max(1, request.repeat) {
                try await writer.write(try Self.response(request.payload, context: context))
            }
        }
        router.clientStreaming("/muster.testing.v1.Echo/ClientStream", Request.self, policy: policy) {
            requests, context in
            var count: Int32 = 0
            var last = Request()
            for try await request in requests {
                count += 1
                last = request
            }
            try await Self.obey(last)
            var response = try Self.response(last.payload, context: context)
            response.count = count
            return response
        }
        router.bidirectional("/muster.testing.v1.Echo/Bidi", Request.self, Response.self, policy: policy) {
            requests, writer, context in
            for try await request in requests {
                try await Self.obey(request)
                try await writer.write(try Self.response(request.payload, context: context))
            }
        }
    }

    private static func obey(_ request: Request) async throws {
        if request.delayMs > 0 { try await Task.sleep(for: .milliseconds(Int(request.delayMs))) }
        if request.failWithCode != 0 {
            throw RPCError(code: .init(rawValue: request.failWithCode), message: request.failWithMessage)
        }
    }

    private static func echoMetadata(_ context: ServerContext) {
        if let value = context.requestMetadata["x-echo"] {
            context.addResponseHeader("x-echo", value)
            context.addResponseTrailer("x-echo-trailer", value)
        }
    }

    private static func response(_ payload: Data, context: ServerContext) throws -> Response {
        var response = Response()
        response.payload = payload
        response.peerSpiffeID = try context.peer()?.spiffeID.description ?? ""
        return response
    }
}
