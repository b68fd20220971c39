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
}
