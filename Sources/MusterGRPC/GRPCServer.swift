import CGRPCCore
import Foundation
import Logging
import MusterConcurrency
import MusterIdentity

/// A gRPC server on gRPC core: binds one address, serves the registered services until shut down.
public final class GRPCServer: Sendable {
    /// Where and how the server listens.
    public struct Configuration: Sendable {
        /// See `completionQueues`.
        public static var defaultCompletionQueues: Int {
            completionQueues(
                environment: ProcessInfo.processInfo.environment, cores: ProcessInfo.processInfo.activeProcessorCount)
        }

        /// `MUSTER_GRPC_COMPLETION_QUEUES` when it is a count from 1 to 64, else one queue per two `cores`.
        static func completionQueues(environment: [String: String], cores: Int) -> Int {
            requestedCompletionQueues(environment) ?? max(1, cores / 2)
        }

        /// The count `MUSTER_GRPC_COMPLETION_QUEUES` asks for, if it holds one from 1 to 64.
        static func requestedCompletionQueues(_ environment: [String: String]) -> Int? {
            guard let text = environment["MUSTER_GRPC_COMPLETION_QUEUES"], let count = Int(text),
                (1...64).contains(count)
            else { return nil }
            return count
        }

        /// The text of `MUSTER_GRPC_COMPLETION_QUEUES` when it is set to anything but a count from 1 to 64; the
        /// server logs that it ignored it.
        static func refusedCompletionQueues(_ environment: [String: String]) -> String? {
            guard let text = environment["MUSTER_GRPC_COMPLETION_QUEUES"], requestedCompletionQueues(environment) == nil
            else { return nil }
            return text
        }

        /// `host:port`; port 0 picks a free one (see `port`).
        public var listenAddress: String
        public var security: ServerSecurity
        public var maxReceiveMessageBytes: Int = 8 << 20
        public var maxSendMessageBytes: Int = 8 << 20
        /// Completion queues, each polled by one thread: by default one per two cores (at least one), or
        /// `MUSTER_GRPC_COMPLETION_QUEUES` (1–64) when set. Every extra thread is another that gRPC core's poller
        /// hands events to; see `grpc-bridge.md` ("Threads and completion") for what was measured.
        public var completionQueues: Int = Configuration.defaultCompletionQueues
        /// Told of every call refused by the peer check (identity not verified, or not allowed for the method).
        public var refusalObserver: (@Sendable (CallRefusal) -> Void)?
        /// Most streaming calls one peer (one verified SPIFFE ID, or one address for callers without a certificate)
        /// may hold open at once; more get RESOURCE_EXHAUSTED.
        public var maxStreamsPerPeer: Int = 32
        /// Shortest gap between a client's keepalive pings the server accepts (more often is a "ping strike",
        /// and two strikes close the connection); the poller's uplink pings every 20 s.
        public var minimumPingInterval: Duration = .seconds(10)
        /// The server's own keepalive: a ping after this long without traffic, and the connection closed when
        /// unanswered for `keepaliveTimeout`, so streams of a peer that vanished do not hold their per-peer slots.
        public var keepaliveInterval: Duration = .seconds(60)
        public var keepaliveTimeout: Duration = .seconds(20)

        /// Serve on this Unix socket instead of `listenAddress` (plaintext; handlers learn the caller's
        /// `ServerContext.peerCredentials`). `mode` is the socket file's permission bits.
        public var unixSocket: (path: String, mode: mode_t)?

        public init(listenAddress: String, security: ServerSecurity) {
            self.listenAddress = listenAddress
            self.security = security
        }

        /// A plaintext server on a Unix socket at `path`.
        public init(unixSocket path: String, mode: mode_t) {
            self.init(listenAddress: "unix:\(path)", security: .insecure)
            unixSocket = (path, mode)
        }
    }

    private struct Lifecycle {
        var accepting = true
        var inFlight = 0
        var drainWaiters: [CheckedContinuation<Void, Never>] = []
        var stopped = false
        var stopWaiters: [CheckedContinuation<Void, Never>] = []
    }

    /// The bound TCP port.
    public let port: Int
    // The server pointer is used through gRPC core's thread-safe API and
    // destroyed once, by `shutdown`, after every call has drained.
    nonisolated(unsafe) private let raw: OpaquePointer
    private let queues: [CompletionQueue]
    private let router: GRPCRouter
    private let fetcher: CertificateFetcher?
    let peerVerifier: PeerVerifier
    private let refusals: (@Sendable (CallRefusal) -> Void)?
    private let maxStreamsPerPeer: Int
    private let openStreams = LockedValue<[String: Int]>([:])
    private let listener: UnixSocketListener?
    private let lifecycle = LockedValue(Lifecycle())
    private let logger: Logger

    /// Creates, binds and starts the server.
    public init(
        configuration: Configuration, services: [any GRPCService], logger: Logger = Logger(label: "muster.grpc.server")
    ) throws(RPCError) {
        GRPCLibrary.ensureInitialised()
        var router = GRPCRouter()
        for service in services { service.register(with: &router) }
        self.router = router
        self.logger = logger
        self.refusals = configuration.refusalObserver
        self.maxStreamsPerPeer = configuration.maxStreamsPerPeer
        if let refused = Configuration.refusedCompletionQueues(ProcessInfo.processInfo.environment) {
            logger.warning(
                "MUSTER_GRPC_COMPLETION_QUEUES ignored: not a count from 1 to 64",
                metadata: ["value": "\(refused)", "completion_queues": "\(configuration.completionQueues)"])
        }

        // Names from gRPC core's header, never typed by hand: core ignores a name it does not know, so a typo
        // (once "min_recv_ping_interval_without_data_ms") silently leaves core's default in place.
        let raw = ChannelArguments([
            (GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, .integer(configuration.maxReceiveMessageBytes)),
            (GRPC_ARG_MAX_SEND_MESSAGE_LENGTH, .integer(configuration.maxSendMessageBytes)),
            (
                GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
                .integer(configuration.minimumPingInterval.milliseconds)
            ),
            (GRPC_ARG_KEEPALIVE_TIME_MS, .integer(configuration.keepaliveInterval.milliseconds)),
            (GRPC_ARG_KEEPALIVE_TIMEOUT_MS, .integer(configuration.keepaliveTimeout.milliseconds)),
            (GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, .integer(0)),
        ]).withCoreArgs { grpc_server_create($0, nil)! }
        self.raw = raw
        queues = (0..<max(1, configuration.completionQueues)).map { CompletionQueue(name: "muster-grpc-server-\($0)") }
        for queue in queues { grpc_server_register_completion_queue(raw, queue.raw, nil) }

        let credentials: OpaquePointer?
        switch configuration.security {
        case .insecure:
            fetcher = nil
            peerVerifier = PeerVerifier(certificates: nil)
            credentials = grpc_insecure_server_credentials_create()
        case .tls(let certificates, let clientCertificates):
            let fetcher = CertificateFetcher(certificates: certificates)
            self.fetcher = fetcher
            peerVerifier = PeerVerifier(certificates: certificates)
            credentials = CertificateFetcher.makeCredentials(fetcher, policy: clientCertificates)
        }
        var listener: UnixSocketListener?
        if let socket = configuration.unixSocket {
            if let credentials { grpc_server_credentials_release(credentials) }
            do {
                listener = try UnixSocketListener(path: socket.path, mode: socket.mode)
            } catch {
                grpc_server_destroy(raw)
                for queue in queues { queue.shutdown() }
                throw error
            }
        }
        self.listener = listener
        let bound =
            listener != nil
            ? 0
            : credentials.map { creds in
                defer { grpc_server_credentials_release(creds) }
                return Int(grpc_server_add_http2_port(raw, configuration.listenAddress, creds))
            } ?? 0
        guard bound > 0 || listener != nil else {
            grpc_server_destroy(raw)
            for queue in queues { queue.shutdown() }
            throw RPCError(
                code: .unavailable,
                message:
                    "cannot listen on \(configuration.listenAddress) (address in use, bad address, or bad TLS certificates)"
            )
        }
        port = bound
        // Single-request methods are registered so core reads the request with the call: one batch less per call.
        let registered: [RegisteredMethod] = router.methods.filter(\.value.singleRequest).keys.sorted().compactMap {
            path in
            grpc_server_register_method(raw, path, nil, GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0)
                .map { RegisteredMethod(path: path, handle: $0) }
        }
        grpc_server_start(raw)
        for queue in queues {
            for _ in 0..<8 { requestCall(on: queue) }
            for method in registered {
                for _ in 0..<4 { requestCall(on: queue, registered: method) }
            }
        }
        listener?.start(server: raw)
    }

    /// The Unix socket's path when the server serves on one.
    public var socketPath: String? { listener?.path }

    /// Suspends until the server has shut down.
    public func serve() async {
        await withCheckedContinuation { continuation in
            let stopped = lifecycle.withLock { state in
                if state.stopped == false { state.stopWaiters.append(continuation) }
                return state.stopped
            }
            if stopped { continuation.resume() }
        }
    }

    /// Stops accepting calls, lets in-flight calls finish for up to `grace`, then cancels the rest and releases everything.
    public func shutdown(grace: Duration = .seconds(10)) async {
        let first = lifecycle.withLock { state in
            defer { state.accepting = false }
            return state.accepting
        }
        guard first else { return await serve() }
        await listener?.stop()
        let notified = OneShot<Void>()
        let tag = CompletionTag { _ in notified.fire() }
        grpc_server_shutdown_and_notify(raw, queues[0].raw, tag.retainedPointer())
        if await notified.wait(timeout: grace) == nil {
            logger.info("cancelling calls still running after the shutdown grace period")
            grpc_server_cancel_all_calls(raw)
            _ = await notified.wait(timeout: nil)
        }
        await withCheckedContinuation { continuation in
            let drained = lifecycle.withLock { state in
                if state.inFlight > 0 { state.drainWaiters.append(continuation) }
                return state.inFlight == 0
            }
            if drained { continuation.resume() }
        }
        grpc_server_destroy(raw)
        for queue in queues { queue.shutdown() }
        for queue in queues { queue.waitUntilFinished() }
        let waiters = lifecycle.withLock { state in
            state.stopped = true
            defer { state.stopWaiters = [] }
            return state.stopWaiters
        }
        for waiter in waiters { waiter.resume() }
    }

    // MARK: Accepting calls

    private func requestCall(on queue: CompletionQueue, registered: RegisteredMethod? = nil) {
        guard lifecycle.withLock({ $0.accepting }) else { return }
        let pending = RequestedCall(registered: registered)
        let tag = CompletionTag { [self] success in
            guard success, let call = pending.take() else { return }
            requestCall(on: queue, registered: registered)
            accept(call)
        }
        let pointer = tag.retainedPointer()
        let error: grpc_call_error
        if let registered {
            error = grpc_server_request_registered_call(
                raw, registered.handle, pending.call, pending.deadline, pending.metadata, pending.payload, queue.raw,
                queue.raw, pointer)
        } else {
            error = grpc_server_request_call(
                raw, pending.call, pending.details, pending.metadata, queue.raw, queue.raw, pointer)
        }
        if error != GRPC_CALL_OK {
            CompletionTag.release(pointer)
            logger.error("gRPC core refused to request a call (call error \(error.rawValue))")
        }
    }

    private func accept(_ call: ServerCall) {
        lifecycle.withLock { $0.inFlight += 1 }
        call.startCloseWatch()
        // The handler starts on this completion-queue thread and runs until its first suspension,
        // so a unary reply that needs no waiting goes out without a thread hop (as gRPC C++'s callback API does).
        let task = Task.immediate { [self] in
            await handle(call)
            callFinished()
        }
        call.watchForCancellation(of: task)
    }

    private func callFinished() {
        let waiters = lifecycle.withLock { state in
            state.inFlight -= 1
            guard state.inFlight == 0 else { return [CheckedContinuation<Void, Never>]() }
            defer { state.drainWaiters = [] }
            return state.drainWaiters
        }
        for waiter in waiters { waiter.resume() }
    }

    private func handle(_ call: ServerCall) async {
        let context = ServerContext(
            call: call, peer: await peerVerifier.identity(of: call),
            credentials: listener.flatMap { $0.credentials(ofPeer: call.peerAddress) })
        guard let method = router.methods[call.method] else {
            let status = RPCError(
                code: .unimplemented, message: "method \(call.method) is not implemented by this server")
            return call.finish(message: nil, status: status, initialMetadata: [:])
        }
        let peer: PeerIdentity?
        do {
            peer = try context.peer()
        } catch {
            return refuse(call, context: context, status: error, peer: nil)
        }
        if let denial = method.policy.decide(peer) { return refuse(call, context: context, status: denial, peer: peer) }
        guard method.longLived else { return await run(method, call, context) }
        // Counted per verified identity, so pollers behind one NAT address do not share a cap; per uid on a Unix
        // socket; per address otherwise.
        let key =
            peer.map { "id:\($0.spiffeID)" } ?? context.peerCredentials.map { "uid:\($0.uid)" }
            ?? "ip:\(context.peerIP)"
        guard openStream(for: key) else {
            let status = RPCError(
                code: .resourceExhausted, message: "at most \(maxStreamsPerPeer) open streams per peer")
            return call.finish(message: nil, status: status, initialMetadata: [:])
        }
        await run(method, call, context)
        openStreams.withLock { streams in
            let open = (streams[key] ?? 1) - 1
            streams[key] = open > 0 ? open : nil
        }
    }

    /// Ends a call the peer check refused: logged, reported to the server's observer (Core audits it, a poller
    /// relays it to Core), answered with the refusal's status.
    private func refuse(_ call: ServerCall, context: ServerContext, status: RPCError, peer: PeerIdentity?) {
        logger.notice(
            "call refused",
            metadata: ["method": "\(call.method)", "peer": "\(context.peerAddress)", "reason": "\(status.message)"])
        refusals?(
            CallRefusal(
                method: call.method, peerAddress: context.peerIP, spiffeID: peer?.spiffeID, code: status.code,
                reason: status.message))
        call.finish(message: nil, status: status, initialMetadata: [:])
    }

    private func openStream(for key: String) -> Bool {
        openStreams.withLock { streams in
            let open = streams[key] ?? 0
            guard open < maxStreamsPerPeer else { return false }
            streams[key] = open + 1
            return true
        }
    }

    private func run(_ method: GRPCRouter.Method, _ call: ServerCall, _ context: ServerContext) async {
        do {
            let message = try await method.body(call, context)
            let ok = RPCError(code: .ok, message: "", metadata: context.responseTrailers)
            call.finish(message: message, status: ok, initialMetadata: context.responseHeaders)
        } catch var error as RPCError {
            for entry in context.responseTrailers { error.metadata.append(entry) }
            call.finish(message: nil, status: error, initialMetadata: context.responseHeaders)
        } catch is CancellationError {
            let status = RPCError(code: .cancelled, message: "the call was cancelled")
            call.finish(message: nil, status: status, initialMetadata: [:])
        } catch {
            logger.error(
                "handler failed",
                metadata: ["method": "\(call.method)", "error": "\(String(describing: type(of: error)))"])
            let status = RPCError(code: .unknown, message: "the server failed to handle the call")
            call.finish(message: nil, status: status, initialMetadata: [:])
        }
    }
}

/// A method registered with gRPC core (`grpc_server_register_method`).
private struct RegisteredMethod: @unchecked Sendable {
    // @unchecked: the handle is an opaque token owned by the server, only passed back to core.
    let path: String
    let handle: UnsafeMutableRawPointer
}

/// The out-parameters of one `grpc_server_request_call` or `grpc_server_request_registered_call`, owned until it completes.
private final class RequestedCall: @unchecked Sendable {
    // @unchecked: written by gRPC core before the completion event, read once after it.
    let call = UnsafeMutablePointer<OpaquePointer?>.allocate(capacity: 1)
    let details = UnsafeMutablePointer<grpc_call_details>.allocate(capacity: 1)
    let metadata = UnsafeMutablePointer<grpc_metadata_array>.allocate(capacity: 1)
    let deadline = UnsafeMutablePointer<gpr_timespec>.allocate(capacity: 1)
    let payload = UnsafeMutablePointer<UnsafeMutablePointer<grpc_byte_buffer>?>.allocate(capacity: 1)
    let registered: RegisteredMethod?

    init(registered: RegisteredMethod?) {
        self.registered = registered
        call.initialize(to: nil)
        payload.initialize(to: nil)
        deadline.initialize(to: gpr_inf_future(GPR_CLOCK_REALTIME))
        grpc_call_details_init(details)
        grpc_metadata_array_init(metadata)
    }

    deinit {
        if let buffer = payload.pointee { grpc_byte_buffer_destroy(buffer) }
        grpc_call_details_destroy(details)
        grpc_metadata_array_destroy(metadata)
        call.deallocate()
        details.deallocate()
        metadata.deallocate()
        deadline.deallocate()
        payload.deallocate()
    }

    func take() -> ServerCall? {
        guard let raw = call.pointee else { return nil }
        call.pointee = nil
        let requestMetadata = ByteBufferReading.metadata(of: metadata)
        guard let registered else {
            let method = String(decoding: ByteBufferReading.bytes(of: details.pointee.method), as: UTF8.self)
            return ServerCall(
                raw: raw, method: method, requestMetadata: requestMetadata,
                deadline: Self.date(details.pointee.deadline))
        }
        var message: [UInt8]?
        if let buffer = payload.pointee {
            message = ByteBufferReading.bytes(of: buffer) ?? []
            grpc_byte_buffer_destroy(buffer)
            payload.pointee = nil
        }
        return ServerCall(
            raw: raw, method: registered.path, requestMetadata: requestMetadata,
            deadline: Self.date(deadline.pointee), prereadMessage: .some(message))
    }

    private static func date(_ deadline: gpr_timespec) -> Date? {
        guard gpr_time_cmp(deadline, gpr_inf_future(deadline.clock_type)) != 0 else { return nil }
        let realtime = gpr_convert_clock_type(deadline, GPR_CLOCK_REALTIME)
        return Date(timeIntervalSince1970: Double(realtime.tv_sec) + Double(realtime.tv_nsec) / 1e9)
    }

}

/// A call refused before its handler ran, because of who the peer is (or failed to prove it is).
public struct CallRefusal: Sendable {
    public let method: String
    /// The caller's IP address, without port.
    public let peerAddress: String
    /// The caller's verified ID when the chain verified but the policy refused it.
    public let spiffeID: SPIFFEID?
    public let code: RPCError.Code
    public let reason: String
}
