import CGRPCCore
import Foundation
import MusterConcurrency

/// One call accepted by a server: owns the `grpc_call` (released once, in `deinit`) and runs its batches.
final class ServerCall: @unchecked Sendable {
    // @unchecked: `raw` is used through gRPC core's thread-safe API; the
    // mutable send flag is touched only by the one task that handles the call.
    let raw: OpaquePointer
    let method: String
    let requestMetadata: Metadata
    let deadline: Date?
    /// For registered single-request methods: `.some(message)` read by core with the call (`.some(nil)`: none sent).
    let prereadMessage: [UInt8]??
    private var sentInitialMetadata = false
    private let cancellation = LockedValue<(cancelled: Bool, task: Task<Void, Never>?)>((false, nil))

    init(
        raw: OpaquePointer, method: String, requestMetadata: Metadata, deadline: Date?, prereadMessage: [UInt8]?? = nil
    ) {
        self.raw = raw
        self.prereadMessage = prereadMessage
        self.method = method
        self.requestMetadata = requestMetadata
        self.deadline = deadline
    }

    deinit { grpc_call_unref(raw) }

    /// The peer's address as gRPC core reports it, e.g. `ipv4:10.0.0.5:41234`.
    var peerAddress: String {
        guard let text = grpc_call_get_peer(raw) else { return "" }
        defer { gpr_free(text) }
        return String(cString: text)
    }

    /// The connection's auth context as gRPC core hands it to this call (a new reference); nil on an insecure call.
    var authContext: AuthContext? { grpc_call_auth_context(raw).map(AuthContext.init) }

    /// Watches for the client going away (cancel, deadline, reset) and cancels `task` when it does.
    func watchForCancellation(of task: Task<Void, Never>) {
        let alreadyCancelled = cancellation.withLock { state in
            state.task = task
            return state.cancelled
        }
        if alreadyCancelled { task.cancel() }
    }

    /// Starts the RECV_CLOSE_ON_SERVER op, which completes when the call ends.
    func startCloseWatch() {
        let batch = Batch()
        batch.receiveCloseOnServer()
        batch.start(on: raw) { [self] _ in
            guard batch.wasCancelled else { return }
            let task = cancellation.withLock { state in
                state.cancelled = true
                return state.task
            }
            task?.cancel()
        }
    }

    var isCancelled: Bool { cancellation.withLock { $0.cancelled } }

    /// Receives the next request message, or nil when the client has closed its side.
    func receive() async throws(RPCError) -> [UInt8]? {
        let batch = Batch()
        batch.receiveMessage()
        guard try await batch.run(on: raw) else {
            throw RPCError(code: .cancelled, message: "the call ended while a message was awaited")
        }
        return batch.takeMessage()
    }

    /// Sends one response message, with the initial metadata before the first one.
    func send(_ bytes: [UInt8], initialMetadata: Metadata) async throws(RPCError) {
        let batch = Batch()
        if sentInitialMetadata == false {
            batch.sendInitialMetadata(initialMetadata)
            sentInitialMetadata = true
        }
        batch.sendMessage(bytes)
        guard try await batch.run(on: raw) else {
            throw RPCError(code: .cancelled, message: "the call ended while a message was sent")
        }
    }

    /// Ends the call: an optional last message and the status, in one batch. It is started, not awaited:
    /// the batch owns its memory until core completes it, and the handler's task ends without another thread hop.
    func finish(message: [UInt8]?, status: RPCError, initialMetadata: Metadata) {
        let batch = Batch()
        // gRPC core wants initial metadata before (or with) the status; without it the client never completes.
        if sentInitialMetadata == false {
            batch.sendInitialMetadata(initialMetadata)
            sentInitialMetadata = true
        }
        if let message { batch.sendMessage(message) }
        let trailing = status.metadata.validationError() == nil ? status.metadata : [:]
        batch.sendStatusFromServer(code: status.code, message: status.message, trailingMetadata: trailing)
        batch.start(on: raw) { _ in }
    }
}
