import CGRPCCore
import Foundation
import MusterConcurrency
import Synchronization

/// What a completion queue delivers for one tag: called once, on the queue's thread, with the op's success flag.
final class CompletionTag: Sendable {
    private let onComplete: @Sendable (Bool) -> Void
    // gRPC core hands the tag between threads inside uninstrumented C; this
    // release/acquire pair makes that hand-off visible to ThreadSanitizer.
    private let published = Atomic<Bool>(false)

    init(_ onComplete: @escaping @Sendable (Bool) -> Void) {
        self.onComplete = onComplete
    }

    /// Retains the tag for gRPC core; the queue thread releases it exactly once.
    func retainedPointer() -> UnsafeMutableRawPointer {
        published.store(true, ordering: .releasing)
        return Unmanaged.passRetained(self).toOpaque()
    }

    /// Takes back a pointer from `retainedPointer()` whose operation will never complete (the start call failed).
    static func release(_ pointer: UnsafeMutableRawPointer) {
        Unmanaged<CompletionTag>.fromOpaque(pointer).release()
    }

    fileprivate static func complete(_ pointer: UnsafeMutableRawPointer, success: Bool) {
        let tag = Unmanaged<CompletionTag>.fromOpaque(pointer).takeRetainedValue()
        _ = tag.published.load(ordering: .acquiring)
        tag.onComplete(success)
    }
}

/// A gRPC completion queue polled by one dedicated thread; no thread is ever made per call.
final class CompletionQueue: Sendable {
    // The queue pointer is used by gRPC core from any thread (its API is thread-safe)
    // and destroyed only by the polling thread after the queue has shut down.
    nonisolated(unsafe) let raw: OpaquePointer
    private let finished = LockedValue<Bool>(false)
    private let finishedCondition = NSCondition()

    init(name: String) {
        GRPCLibrary.ensureInitialised()
        raw = grpc_completion_queue_create_for_next(nil)
        let thread = Thread { [self] in
            Self.poll(self.raw)
            self.markFinished()
        }
        thread.name = name
        thread.start()
    }

    private static func poll(_ queue: OpaquePointer) {
        let forever = gpr_inf_future(GPR_CLOCK_REALTIME)
        while true {
            let event = grpc_completion_queue_next(queue, forever, nil)
            switch event.type {
            case GRPC_OP_COMPLETE:
                CompletionTag.complete(event.tag, success: event.success != 0)
            case GRPC_QUEUE_SHUTDOWN:
                grpc_completion_queue_destroy(queue)
                return
            default:
                continue
            }
        }
    }

    private func markFinished() {
        finishedCondition.lock()
        finished.withLock { $0 = true }
        finishedCondition.broadcast()
        finishedCondition.unlock()
    }

    /// Shuts the queue down; its thread drains the remaining events, destroys the queue and exits.
    func shutdown() {
        grpc_completion_queue_shutdown(raw)
    }

    /// Blocks until the polling thread has exited (after `shutdown()` and the last pending event).
    func waitUntilFinished() {
        finishedCondition.lock()
        while finished.withLock({ $0 }) == false { finishedCondition.wait() }
        finishedCondition.unlock()
    }
}

/// A small fixed set of completion queues shared by every client channel in the process.
final class CompletionQueuePool: Sendable {
    static let shared = CompletionQueuePool(
        count: max(2, min(4, ProcessInfo.processInfo.activeProcessorCount)),
        name: "muster-grpc-client"
    )

    let queues: [CompletionQueue]
    private let next = Atomic<Int>(0)

    init(count: Int, name: String) {
        queues = (0..<count).map { CompletionQueue(name: "\(name)-\($0)") }
    }

    /// The next queue in round-robin order.
    func pick() -> CompletionQueue {
        let index = next.wrappingAdd(1, ordering: .relaxed).oldValue
        return queues[index % queues.count]
    }
}
