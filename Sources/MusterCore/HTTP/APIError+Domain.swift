import Foundation

extension APIError {
    /// The HTTP status of every domain error: the one place the routes map them.
    public init(_ error: DomainError) {
        switch error.code {
        case .invalid: self.init(.badRequest, error.message)
        case .notFound: self.init(.notFound, error.message)
        case .conflict: self.init(.conflict, error.message)
        case .gone: self.init(.gone, error.message)
        case .unprocessable, .cannotIssue: self.init(.unprocessable, error.message)
        case .unauthenticated: self.init(.unauthorized, error.message)
        case .permissionDenied: self.init(.forbidden, error.message)
        case .unavailable: self.init(.unavailable, error.message)
        default: self.init(.internalError, error.message)
        }
    }
}
