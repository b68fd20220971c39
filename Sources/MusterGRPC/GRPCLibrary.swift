import CGRPCCore
import CMusterGRPCShim

/// gRPC core's process-wide initialisation, done once before the first server or channel.
enum GRPCLibrary {
    private static let initialised: Bool = {
        // Before any of gRPC core's mutexes exist: no lock-order graph to keep (see the shim's header).
        muster_absl_ignore_lock_cycles()
        grpc_init()
        return true
    }()

    static func ensureInitialised() {
        precondition(initialised)
    }
}
