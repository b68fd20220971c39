import ServiceLifecycle

#if os(Linux)
    import CMusterMalloc
#endif

extension Runtime {
    /// Caps glibc's malloc at two arenas. By default every thread that allocates while another holds an arena
    /// gets one of its own, up to eight per core; a poller's two dozen threads (event loops, gRPC, the SQLite
    /// pool) then kept 16 arenas holding 10 MB for 6 MB in use. Call it first in `main`: arenas made before
    /// the call stay.
    public static func keepFewMallocArenas() {
        #if os(Linux)
            _ = mallopt(M_ARENA_MAX, 2)
        #endif
    }

    /// Bytes the allocator holds free (glibc's `mallinfo2().fordblks`); 0 where it cannot tell.
    public static var freeHeldBytes: Int {
        #if os(Linux)
            return Int(mallinfo2().fordblks)
        #else
            return 0
        #endif
    }

    /// Hands the whole free pages the allocator holds back to the system (`malloc_trim`) when it holds more than
    /// `threshold` bytes free. glibc gives back only the free space at the top of its main heap by itself, so
    /// after a burst (a poller onboarding a thousand agents at once) the freed memory of every connection would
    /// stay counted against the process. True when pages were handed back.
    @discardableResult
    public static func returnFreeMemory(above threshold: Int) -> Bool {
        #if os(Linux)
            guard freeHeldBytes > threshold else { return false }
            return malloc_trim(0) == 1
        #else
            return false
        #endif
    }
}

/// Every `interval`, hands free memory above `threshold` back to the system (`Runtime.returnFreeMemory`): a
/// long-running edge process's RSS falls back after a burst instead of staying at its peak.
public struct FreeMemoryReturn: Service {
    let interval: Duration
    let threshold: Int

    public init(interval: Duration = .seconds(30), threshold: Int = 1 << 20) {
        self.interval = interval
        self.threshold = threshold
    }

    public func run() async throws {
        try await LoopService { [interval, threshold] in
            while !Task.isCancelled {
                try await Task.sleep(for: interval)
                Runtime.returnFreeMemory(above: threshold)
            }
        }.run()
    }
}
