import CGRPCCore
import CMusterGRPCShim

/// The ops of one `grpc_call_start_batch` and every buffer they point at, owned until the batch completes.
///
/// gRPC core reads and writes this memory between the start call and the
/// completion event, so the batch is kept alive by its completion tag and
/// freed in `deinit`, exactly once, after core is done with it.
final class Batch: @unchecked Sendable {
    // @unchecked: one task builds and runs a batch; the completion thread
    // only resumes that task, and results are read after the resume.
    private var ops: [grpc_op] = []
    private var slices: [grpc_slice] = []
    private var sendBuffers: [UnsafeMutablePointer<grpc_byte_buffer>] = []
    private var metadataArrays: [UnsafeMutablePointer<grpc_metadata>] = []
    private var statusDetails: UnsafeMutablePointer<grpc_slice>?

    private var receivedMessage: UnsafeMutablePointer<UnsafeMutablePointer<grpc_byte_buffer>?>?
    private var receivedInitialMetadata: UnsafeMutablePointer<grpc_metadata_array>?
    private var receivedTrailingMetadata: UnsafeMutablePointer<grpc_metadata_array>?
    private var receivedStatus: UnsafeMutablePointer<grpc_status_code>?
    private var receivedDetails: UnsafeMutablePointer<grpc_slice>?
    private var receivedErrorString: UnsafeMutablePointer<UnsafePointer<CChar>?>?
    private var closeCancelled: UnsafeMutablePointer<Int32>?

    init() {}

    deinit {
        for slice in slices { grpc_slice_unref(slice) }
        for buffer in sendBuffers { grpc_byte_buffer_destroy(buffer) }
        for array in metadataArrays { array.deallocate() }
        if let statusDetails {
            grpc_slice_unref(statusDetails.pointee)
            statusDetails.deallocate()
        }
        if let receivedMessage {
            if let buffer = receivedMessage.pointee { grpc_byte_buffer_destroy(buffer) }
            receivedMessage.deallocate()
        }
        for array in [receivedInitialMetadata, receivedTrailingMetadata].compactMap({ $0 }) {
            grpc_metadata_array_destroy(array)
            array.deallocate()
        }
        receivedStatus?.deallocate()
        if let receivedDetails {
            grpc_slice_unref(receivedDetails.pointee)
            receivedDetails.deallocate()
        }
        if let receivedErrorString {
            if let text = receivedErrorString.pointee { gpr_free(UnsafeMutableRawPointer(mutating: text)) }
            receivedErrorString.deallocate()
        }
        closeCancelled?.deallocate()
    }

    // MARK: Building

    private func op(_ type: grpc_op_type) -> grpc_op {
        var op = grpc_op()
        op.op = type
        op.flags = 0
        op.reserved = nil
        return op
    }

    /// A new slice holding a copy of `bytes`; the caller owns one reference.
    private static func newSlice(_ bytes: [UInt8]) -> grpc_slice {
        bytes.withUnsafeBufferPointer { buffer in
            buffer.baseAddress.map { base in
                base.withMemoryRebound(to: CChar.self, capacity: buffer.count) {
                    grpc_slice_from_copied_buffer($0, buffer.count)
                }
            } ?? grpc_empty_slice()
        }
    }

    /// A slice of `bytes` released with the batch.
    private func copySlice(_ bytes: [UInt8]) -> grpc_slice {
        let slice = Self.newSlice(bytes)
        slices.append(slice)
        return slice
    }

    private func metadataPointer(_ metadata: Metadata) -> (UnsafeMutablePointer<grpc_metadata>?, Int) {
        guard metadata.isEmpty == false else { return (nil, 0) }
        let array = UnsafeMutablePointer<grpc_metadata>.allocate(capacity: metadata.count)
        for (index, entry) in metadata.enumerated() {
            var element = grpc_metadata()
            element.key = copySlice(Array(entry.key.utf8))
            element.value = copySlice(entry.value)
            array.advanced(by: index).initialize(to: element)
        }
        metadataArrays.append(array)
        return (array, metadata.count)
    }

    func sendInitialMetadata(_ metadata: Metadata) {
        var op = op(GRPC_OP_SEND_INITIAL_METADATA)
        let (pointer, count) = metadataPointer(metadata)
        op.data.send_initial_metadata.count = count
        op.data.send_initial_metadata.metadata = pointer
        ops.append(op)
    }

    func sendMessage(_ bytes: [UInt8]) {
        var slice = copySlice(bytes)
        let buffer = grpc_raw_byte_buffer_create(&slice, 1)!
        sendBuffers.append(buffer)
        var op = op(GRPC_OP_SEND_MESSAGE)
        op.data.send_message.send_message = buffer
        ops.append(op)
    }

    func sendCloseFromClient() {
        ops.append(op(GRPC_OP_SEND_CLOSE_FROM_CLIENT))
    }

    func sendStatusFromServer(code: RPCError.Code, message: String, trailingMetadata: Metadata) {
        var op = op(GRPC_OP_SEND_STATUS_FROM_SERVER)
        let (pointer, count) = metadataPointer(trailingMetadata)
        op.data.send_status_from_server.trailing_metadata_count = count
        op.data.send_status_from_server.trailing_metadata = pointer
        op.data.send_status_from_server.status = grpc_status_code(rawValue: code.rawValue)
        let details = UnsafeMutablePointer<grpc_slice>.allocate(capacity: 1)
        details.initialize(to: Self.newSlice(Array(message.utf8)))
        statusDetails = details
        op.data.send_status_from_server.status_details = details
        ops.append(op)
    }

    func receiveInitialMetadata() {
        let array = UnsafeMutablePointer<grpc_metadata_array>.allocate(capacity: 1)
        grpc_metadata_array_init(array)
        receivedInitialMetadata = array
        var op = op(GRPC_OP_RECV_INITIAL_METADATA)
        op.data.recv_initial_metadata.recv_initial_metadata = array
        ops.append(op)
    }

    func receiveMessage() {
        let slot = UnsafeMutablePointer<UnsafeMutablePointer<grpc_byte_buffer>?>.allocate(capacity: 1)
        slot.initialize(to: nil)
        receivedMessage = slot
        var op = op(GRPC_OP_RECV_MESSAGE)
        op.data.recv_message.recv_message = slot
        ops.append(op)
    }

    func receiveStatusOnClient() {
        let trailing = UnsafeMutablePointer<grpc_metadata_array>.allocate(capacity: 1)
        grpc_metadata_array_init(trailing)
        receivedTrailingMetadata = trailing
        let status = UnsafeMutablePointer<grpc_status_code>.allocate(capacity: 1)
        status.initialize(to: GRPC_STATUS_UNKNOWN)
        receivedStatus = status
        let details = UnsafeMutablePointer<grpc_slice>.allocate(capacity: 1)
        details.initialize(to: grpc_empty_slice())
        receivedDetails = details
        let errorString = UnsafeMutablePointer<UnsafePointer<CChar>?>.allocate(capacity: 1)
        errorString.initialize(to: nil)
        receivedErrorString = errorString
        var op = op(GRPC_OP_RECV_STATUS_ON_CLIENT)
        op.data.recv_status_on_client.trailing_metadata = trailing
        op.data.recv_status_on_client.status = status
        op.data.recv_status_on_client.status_details = details
        op.data.recv_status_on_client.error_string = errorString
        ops.append(op)
    }

    func receiveCloseOnServer() {
        let cancelled = UnsafeMutablePointer<Int32>.allocate(capacity: 1)
        cancelled.initialize(to: 0)
        closeCancelled = cancelled
        var op = op(GRPC_OP_RECV_CLOSE_ON_SERVER)
        op.data.recv_close_on_server.cancelled = cancelled
        ops.append(op)
    }

    // MARK: Running

    /// Starts the batch on `call` and suspends until it completes; returns gRPC core's success flag.
    func run(on call: OpaquePointer) async throws(RPCError) -> Bool {
        let outcome: Result<Bool, RPCError> = await withUnsafeContinuation { continuation in
            start(on: call) { continuation.resume(returning: $0) }
        }
        return try outcome.get()
    }

    /// Starts the batch; `completion` runs once on a completion-queue thread (or at once if the start fails).
    func start(on call: OpaquePointer, completion: @escaping @Sendable (Result<Bool, RPCError>) -> Void) {
        let tag = CompletionTag { [self] success in
            withExtendedLifetime(self) { completion(.success(success)) }
        }
        let pointer = tag.retainedPointer()
        let error = ops.withUnsafeBufferPointer { buffer in
            grpc_call_start_batch(call, buffer.baseAddress, buffer.count, pointer, nil)
        }
        if error != GRPC_CALL_OK {
            CompletionTag.release(pointer)
            completion(
                .failure(
                    RPCError(
                        code: .internalError, message: "gRPC core refused the batch (call error \(error.rawValue))")))
        }
    }

    // MARK: Results (valid after completion)

    /// The received message, or nil at the end of the stream.
    func takeMessage() -> [UInt8]? {
        guard let slot = receivedMessage, let buffer = slot.pointee else { return nil }
        defer {
            grpc_byte_buffer_destroy(buffer)
            slot.pointee = nil
        }
        return ByteBufferReading.bytes(of: buffer) ?? []
    }

    var initialMetadata: Metadata {
        receivedInitialMetadata.map { ByteBufferReading.metadata(of: $0) } ?? [:]
    }

    var status: RPCError {
        let code = RPCError.Code(rawValue: receivedStatus?.pointee.rawValue ?? GRPC_STATUS_UNKNOWN.rawValue)
        let message =
            receivedDetails.map { String(decoding: ByteBufferReading.bytes(of: $0.pointee), as: UTF8.self) } ?? ""
        let trailing = receivedTrailingMetadata.map { ByteBufferReading.metadata(of: $0) } ?? [:]
        return RPCError(code: code, message: message, metadata: trailing)
    }

    var wasCancelled: Bool { (closeCancelled?.pointee ?? 0) != 0 }
}

/// Copies bytes and metadata out of gRPC core's buffers.
enum ByteBufferReading {
    static func bytes(of slice: grpc_slice) -> [UInt8] {
        withUnsafePointer(to: slice) { pointer in
            let count = muster_slice_length(pointer)
            guard count > 0, let start = muster_slice_start(pointer) else { return [] }
            return Array(UnsafeBufferPointer(start: start, count: count))
        }
    }

    static func bytes(of buffer: UnsafeMutablePointer<grpc_byte_buffer>) -> [UInt8]? {
        var reader = grpc_byte_buffer_reader()
        guard grpc_byte_buffer_reader_init(&reader, buffer) != 0 else { return nil }
        let slice = grpc_byte_buffer_reader_readall(&reader)
        grpc_byte_buffer_reader_destroy(&reader)
        defer { grpc_slice_unref(slice) }
        return bytes(of: slice)
    }

    static func metadata(of array: UnsafeMutablePointer<grpc_metadata_array>) -> Metadata {
        var metadata = Metadata()
        for index in 0..<array.pointee.count {
            let entry = array.pointee.metadata[index]
            metadata.append(
                .init(key: String(decoding: bytes(of: entry.key), as: UTF8.self), value: bytes(of: entry.value)))
        }
        return metadata
    }
}
