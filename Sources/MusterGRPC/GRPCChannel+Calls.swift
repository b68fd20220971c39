import CGRPCCore
import MusterConcurrency
import SwiftProtobuf

extension GRPCChannel {
    /// One request, one response. Throws `RPCError`.
    public func unary<Request: Message, Response: Message>(
        _ path: String, _ request: Request, as response: Response.Type = Response.self, options: CallOptions = .init()
    ) async throws -> Response {
        try await unaryResponse(path, request, as: response, options: options).message
    }

    /// One request, one response, with the response's metadata. Throws `RPCError`.
    public func unaryResponse<Request: Message, Response: Message>(
        _ path: String, _ request: Request, as: Response.Type = Response.self, options: CallOptions = .init()
    ) async throws -> ClientResponse<Response> {
        let raw = try await unaryBytes(path, try Codec.encode(request), options: options)
        return ClientResponse(
            message: try Codec.decode(Response.self, from: raw.message), initialMetadata: raw.initialMetadata,
            trailingMetadata: raw.trailingMetadata)
    }

    /// A unary call on serialized bytes: one batch, one completion.
    func unaryBytes(_ path: String, _ request: [UInt8], options: CallOptions) async throws -> ClientResponse<[UInt8]> {
        let call = try ClientCall(channel: self, path: path, options: options)
        let batch = Batch()
        batch.sendInitialMetadata(options.metadata)
        batch.sendMessage(request)
        batch.sendCloseFromClient()
        batch.receiveInitialMetadata()
        batch.receiveMessage()
        batch.receiveStatusOnClient()
        _ = try await call.run(batch)
        let status = batch.status
        guard status.code == .ok else { throw status }
        guard let bytes = batch.takeMessage() else {
            throw RPCError(code: .internalError, message: "the server ended \(path) without a response message")
        }
        return ClientResponse(message: bytes, initialMetadata: batch.initialMetadata, trailingMetadata: status.metadata)
    }

    /// One request, a stream of responses read inside `body`; the call is cancelled if `body` returns early.
    public func serverStreaming<Request: Message, Response: Message, Result: Sendable>(
        _ path: String, _ request: Request, as: Response.Type = Response.self, options: CallOptions = .init(),
        _ body: (ClientResponseStream<Response>) async throws -> Result
    ) async throws -> Result {
        let stream = try StreamingCall(channel: self, path: path, options: options)
        try await stream.write(Codec.encode(request), closing: true)
        return try await stream.finishing { try await body(ClientResponseStream(stream: stream)) }
    }

    /// A stream of requests written inside `body`, then one response.
    public func clientStreaming<Request: Message, Response: Message>(
        _ path: String, as: Response.Type = Response.self, options: CallOptions = .init(),
        _ body: (ClientRequestWriter<Request>) async throws -> Void
    ) async throws -> Response {
        let stream = try StreamingCall(channel: self, path: path, options: options)
        return try await stream.finishing {
            try await body(ClientRequestWriter(stream: stream))
            try await stream.closeWrites()
            guard let bytes = try await stream.read() else {
                throw RPCError(code: .internalError, message: "the server ended \(path) without a response message")
            }
            return try Codec.decode(Response.self, from: bytes)
        }
    }

    /// Streams both ways inside `body`; writes are closed when `body` returns.
    public func bidirectional<Request: Message, Response: Message, Result: Sendable>(
        _ path: String, as: Response.Type = Response.self, options: CallOptions = .init(),
        _ body: (ClientRequestWriter<Request>, ClientResponseStream<Response>) async throws -> Result
    ) async throws -> Result {
        let stream = try StreamingCall(channel: self, path: path, options: options)
        return try await stream.finishing {
            try await body(ClientRequestWriter(stream: stream), ClientResponseStream(stream: stream))
        }
    }
}

/// The responses of a streaming call, in order; ends with the call's status (thrown if not OK).
public struct ClientResponseStream<Response: Message>: AsyncSequence, Sendable {
    let stream: StreamingCall

    public struct AsyncIterator: AsyncIteratorProtocol {
        let stream: StreamingCall
        public mutating func next() async throws -> Response? {
            guard let bytes = try await stream.read() else { return nil }
            return try Codec.decode(Response.self, from: bytes)
        }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(stream: stream) }

    /// The server's initial metadata (waits for it).
    public var initialMetadata: Metadata { get async { await stream.headers.value } }
}

/// Writes the requests of a streaming call, in order.
public struct ClientRequestWriter<Request: Message>: Sendable {
    let stream: StreamingCall

    public func write(_ request: Request) async throws {
        try await stream.write(Codec.encode(request), closing: false)
    }

    /// Tells the server no more requests follow.
    public func finish() async throws { try await stream.closeWrites() }
}

/// A client call with separate send, receive and status batches.
final class StreamingCall: Sendable {
    let call: ClientCall
    let path: String
    let options: CallOptions
    let status = OneShot<RPCError>()
    let headers = OneShot<Metadata>()
    private let progress = LockedValue<(sentHeaders: Bool, closed: Bool, receivedHeaders: Bool, ended: Bool)>(
        (false, false, false, false))

    init(channel: GRPCChannel, path: String, options: CallOptions) throws {
        call = try ClientCall(channel: channel, path: path, options: options)
        self.path = path
        self.options = options
        let batch = Batch()
        batch.receiveStatusOnClient()
        batch.start(on: call.raw) { [status, headers] result in
            let final =
                (try? result.get()) != nil
                ? batch.status : RPCError(code: .internalError, message: "gRPC core did not deliver a status")
            headers.fulfil([:])
            status.fulfil(final)
        }
    }

    /// Runs `body`; cancels the call if it has not ended, and turns a broken send/receive into the call's real status.
    func finishing<R>(_ body: () async throws -> R) async throws -> R {
        do {
            let result = try await body()
            if progress.withLock({ $0.ended }) == false {
                try? await closeWrites()
            }
            return result
        } catch let error as StreamBroken {
            _ = error
            throw await status.value
        } catch {
            call.cancel()
            throw error
        }
    }

    func write(_ bytes: [UInt8], closing: Bool) async throws {
        let batch = Batch()
        let needsHeaders = progress.withLock { state in
            defer {
                state.sentHeaders = true
                if closing { state.closed = true }
            }
            return state.sentHeaders == false
        }
        if needsHeaders { batch.sendInitialMetadata(options.metadata) }
        batch.sendMessage(bytes)
        if closing { batch.sendCloseFromClient() }
        guard try await call.run(batch) else { throw StreamBroken() }
    }

    func closeWrites() async throws {
        let (needsHeaders, needsClose) = progress.withLock { state in
            defer {
                state.sentHeaders = true
                state.closed = true
            }
            return (state.sentHeaders == false, state.closed == false)
        }
        guard needsClose else { return }
        let batch = Batch()
        if needsHeaders { batch.sendInitialMetadata(options.metadata) }
        batch.sendCloseFromClient()
        guard try await call.run(batch) else { throw StreamBroken() }
    }

    /// The next message, or nil at a clean end; throws the status when the call failed.
    func read() async throws -> [UInt8]? {
        if progress.withLock({ $0.sentHeaders }) == false {
            // The server answers only after it has seen our headers.
            let batch = Batch()
            batch.sendInitialMetadata(options.metadata)
            progress.withLock { $0.sentHeaders = true }
            guard try await call.run(batch) else { throw await status.value }
        }
        let batch = Batch()
        let firstRead = progress.withLock { state in
            defer { state.receivedHeaders = true }
            return state.receivedHeaders == false
        }
        if firstRead { batch.receiveInitialMetadata() }
        batch.receiveMessage()
        let ok = try await call.run(batch)
        if firstRead { headers.fulfil(batch.initialMetadata) }
        if ok, let bytes = batch.takeMessage() { return bytes }
        progress.withLock { $0.ended = true }
        let final = await status.value
        guard final.code == .ok else { throw final }
        return nil
    }
}

/// A send or receive failed because the call ended; the status says why.
struct StreamBroken: Error {}
