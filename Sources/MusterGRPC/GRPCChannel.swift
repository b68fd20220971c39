import CGRPCCore
import Foundation

/// A client connection to one gRPC target over gRPC core; calls are made through its methods.
public final class GRPCChannel: Sendable {
    // Created once and destroyed once, in deinit; every call retains the channel.
    nonisolated(unsafe) let raw: OpaquePointer
    public let target: String

    /// HTTP/2 keepalive for a channel that holds a long-lived stream: a ping after `interval` without
    /// traffic, and the connection closed (its calls failing with UNAVAILABLE) when no answer comes within
    /// `timeout`. Without it a stream whose peer vanished (a link cut, a NAT that forgot the flow) waits forever.
    public struct Keepalive: Sendable {
        public var interval: Duration
        public var timeout: Duration

        public init(interval: Duration, timeout: Duration) {
            self.interval = interval
            self.timeout = timeout
        }
    }

    /// Opens a channel to `target` (`host:port`); connections are made lazily by the first call.
    public init(
        target: String, security: ChannelSecurity,
        maxReceiveMessageBytes: Int = 8 << 20, maxSendMessageBytes: Int = 8 << 20, keepalive: Keepalive? = nil
    ) throws(RPCError) {
        GRPCLibrary.ensureInitialised()
        guard let credentials = security.makeCoreCredentials() else {
            throw RPCError(code: .invalidArgument, message: "the TLS settings for \(target) were refused by gRPC core")
        }
        defer { grpc_channel_credentials_release(credentials) }
        var entries: [(String, ChannelArguments.Value)] = [
            (GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, .integer(maxReceiveMessageBytes)),
            (GRPC_ARG_MAX_SEND_MESSAGE_LENGTH, .integer(maxSendMessageBytes)),
            (GRPC_ARG_PRIMARY_USER_AGENT_STRING, .string("muster-grpc")),
            // Each Muster channel gets its own connection rather than sharing a global subchannel pool.
            (GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, .integer(1)),
        ]
        if let keepalive {
            entries += [
                (GRPC_ARG_KEEPALIVE_TIME_MS, .integer(keepalive.interval.milliseconds)),
                (GRPC_ARG_KEEPALIVE_TIMEOUT_MS, .integer(keepalive.timeout.milliseconds)),
                // Otherwise core stops pinging after two pings on a stream that carries no data.
                (GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, .integer(0)),
            ]
        }
        let arguments = ChannelArguments(entries)
        guard let channel = arguments.withCoreArgs({ grpc_channel_create(target, credentials, $0) }) else {
            throw RPCError(code: .invalidArgument, message: "gRPC core could not create a channel to \(target)")
        }
        raw = channel
        self.target = target
    }

    deinit { grpc_channel_destroy(raw) }
}

/// Per-call settings: metadata sent with the call and its timeout.
public struct CallOptions: Sendable {
    public var metadata: Metadata
    public var timeout: Duration?

    public init(metadata: Metadata = [:], timeout: Duration? = nil) {
        self.metadata = metadata
        self.timeout = timeout
    }
}

/// A response with the metadata that came with it.
public struct ClientResponse<Message: Sendable>: Sendable {
    public var message: Message
    public var initialMetadata: Metadata
    public var trailingMetadata: Metadata
}

/// One client call: owns the `grpc_call` (released once, in `deinit`) and the channel it runs on.
final class ClientCall: Sendable {
    // Used only through gRPC core's thread-safe call API.
    nonisolated(unsafe) let raw: OpaquePointer
    let channel: GRPCChannel

    init(channel: GRPCChannel, path: String, options: CallOptions) throws(RPCError) {
        if let problem = options.metadata.validationError() {
            throw RPCError(code: .invalidArgument, message: problem)
        }
        let deadline: gpr_timespec
        if let timeout = options.timeout {
            let (seconds, attoseconds) = timeout.components
            let nanos = max(0, seconds) * 1_000_000_000 + attoseconds / 1_000_000_000
            deadline = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_nanos(nanos, GPR_TIMESPAN))
        } else {
            deadline = gpr_inf_future(GPR_CLOCK_REALTIME)
        }
        let queue = CompletionQueuePool.shared.pick()
        let method = grpc_slice_from_copied_string(path)
        defer { grpc_slice_unref(method) }
        // 0xFFFF: GRPC_PROPAGATE_DEFAULTS.
        guard
            let call = grpc_channel_create_call(
                channel.raw, nil, 0xFFFF, queue.raw, method, nil, deadline, nil)
        else {
            throw RPCError(code: .internalError, message: "gRPC core could not create a call to \(path)")
        }
        raw = call
        self.channel = channel
    }

    deinit { grpc_call_unref(raw) }

    func cancel() { grpc_call_cancel(raw, nil) }

    /// Runs a batch; a cancelled task cancels the call (the batch then completes with the call's end).
    func run(_ batch: Batch) async throws -> Bool {
        try await withTaskCancellationHandler {
            try await batch.run(on: raw)
        } onCancel: {
            cancel()
        }
    }
}
