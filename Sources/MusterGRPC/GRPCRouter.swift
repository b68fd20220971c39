import SwiftProtobuf

/// A service that registers its methods with a server.
public protocol GRPCService: Sendable {
    func register(with router: inout GRPCRouter)
}

/// The methods a server serves, by full path (`/package.Service/Method`), each with its peer policy.
public struct GRPCRouter: Sendable {
    struct Method: Sendable {
        let policy: PeerPolicy
        /// One request message (unary, server streaming): gRPC core reads it before the call is handed over.
        var singleRequest = false
        /// Any call kind but unary: it may stay open, so the server caps how many one peer holds at once.
        var longLived = false
        /// Runs the method; returns the final response message to send with the status, if any.
        let body: @Sendable (ServerCall, ServerContext) async throws -> [UInt8]?
    }

    private(set) var methods: [String: Method] = [:]

    public init() {}

    /// One request, one response.
    public mutating func unary<Request: Message, Response: Message>(
        _ path: String, _ request: Request.Type, policy: PeerPolicy = .anyone,
        handler: @escaping @Sendable (Request, ServerContext) async throws -> Response
    ) {
        methods[path] = Method(policy: policy, singleRequest: true) { call, context in
            let request = try await Self.onlyRequest(Request.self, from: call)
            return try Codec.encode(try await handler(request, context))
        }
    }

    /// One request, a stream of responses.
    public mutating func serverStreaming<Request: Message, Response: Message>(
        _ path: String, _ request: Request.Type, _ response: Response.Type, policy: PeerPolicy = .anyone,
        handler: @escaping @Sendable (Request, ResponseWriter<Response>, ServerContext) async throws -> Void
    ) {
        methods[path] = Method(policy: policy, singleRequest: true, longLived: true) { call, context in
            let request = try await Self.onlyRequest(Request.self, from: call)
            try await handler(request, ResponseWriter(call: call, context: context), context)
            return nil
        }
    }

    /// A stream of requests, one response.
    public mutating func clientStreaming<Request: Message, Response: Message>(
        _ path: String, _ request: Request.Type, policy: PeerPolicy = .anyone,
        handler: @escaping @Sendable (RequestStream<Request>, ServerContext) async throws -> Response
    ) {
        methods[path] = Method(policy: policy, longLived: true) { call, context in
            try Codec.encode(try await handler(RequestStream(call: call), context))
        }
    }

    /// Streams both ways.
    public mutating func bidirectional<Request: Message, Response: Message>(
        _ path: String, _ request: Request.Type, _ response: Response.Type, policy: PeerPolicy = .anyone,
        handler:
            @escaping @Sendable (RequestStream<Request>, ResponseWriter<Response>, ServerContext) async throws -> Void
    ) {
        methods[path] = Method(policy: policy, longLived: true) { call, context in
            try await handler(RequestStream(call: call), ResponseWriter(call: call, context: context), context)
            return nil
        }
    }

    private static func onlyRequest<Request: Message>(_ type: Request.Type, from call: ServerCall) async throws
        -> Request
    {
        if case .some(let preread) = call.prereadMessage {
            guard let bytes = preread else {
                throw RPCError(code: .invalidArgument, message: "the call carried no request message")
            }
            return try Codec.decode(Request.self, from: bytes)
        }
        guard let bytes = try await call.receive() else {
            throw RPCError(code: .invalidArgument, message: "the call carried no request message")
        }
        return try Codec.decode(Request.self, from: bytes)
    }
}

/// The requests of a client-streaming or bidirectional call, in order.
public struct RequestStream<Request: Message>: AsyncSequence, Sendable {
    let call: ServerCall

    public struct AsyncIterator: AsyncIteratorProtocol {
        let call: ServerCall
        public mutating func next() async throws -> Request? {
            try Task.checkCancellation()
            guard let bytes = try await call.receive() else { return nil }
            return try Codec.decode(Request.self, from: bytes)
        }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(call: call) }
}

/// Sends the responses of a streaming call, one at a time, in order.
public struct ResponseWriter<Response: Message>: Sendable {
    let call: ServerCall
    let context: ServerContext

    public func write(_ response: Response) async throws {
        try Task.checkCancellation()
        try await call.send(try Codec.encode(response), initialMetadata: context.responseHeaders)
    }
}

/// Protobuf coding with gRPC status errors.
enum Codec {
    static func encode<M: Message>(_ message: M) throws(RPCError) -> [UInt8] {
        do {
            return try message.serializedBytes()
        } catch {
            throw RPCError(code: .internalError, message: "\(M.protoMessageName) could not be encoded")
        }
    }

    static func decode<M: Message>(_ type: M.Type, from bytes: [UInt8]) throws(RPCError) -> M {
        do {
            return try M(serializedBytes: bytes)
        } catch {
            throw RPCError(code: .invalidArgument, message: "the message is not a valid \(M.protoMessageName)")
        }
    }
}
