import CGRPCCore

/// gRPC core's process-wide initialisation, done once before the first server or channel.
enum GRPCLibrary {
    private static let initialised: Bool = {
        grpc_init()
        return true
    }()

    static func ensureInitialised() {
        precondition(initialised)
    }
}
