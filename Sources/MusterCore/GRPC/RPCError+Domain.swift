import MusterGRPC

extension RPCError {
    /// The gRPC status of every domain error: the one place Core's gRPC services map them. A failure of Core's
    /// own (the database, a broken key) is UNAVAILABLE, so pollers retry; nothing was changed.
    init(_ error: DomainError) {
        switch error.code {
        case .invalid, .cannotIssue: self.init(code: .invalidArgument, message: error.message)
        case .notFound: self.init(code: .notFound, message: error.message)
        case .conflict, .gone, .unprocessable: self.init(code: .failedPrecondition, message: error.message)
        case .unauthenticated: self.init(code: .unauthenticated, message: error.message)
        case .permissionDenied: self.init(code: .permissionDenied, message: error.message)
        default: self.init(code: .unavailable, message: "Core cannot complete this now; nothing was changed, retry")
        }
    }
}
