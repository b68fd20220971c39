import Foundation
import MusterErrors
import MusterIdentity
import MusterStore

/// What Core's domain services (packages, and those to come) throw: a stable code and one message for the
/// caller. The HTTP routes and the gRPC services each map these codes to a status in one place
/// (`APIError(_:DomainError)`, `RPCError(_:DomainError)`); the domain knows neither transport.
public struct DomainError: CodedError {
    public struct Code: NamedErrorCode {
        public let name: String
        /// The request breaks a rule (a name, a field, a CSR).
        public static let invalid = Code(name: "invalid")
        /// No such package (or other named thing).
        public static let notFound = Code(name: "not_found")
        /// The thing exists but its state does not allow this (revoked, already live, expired).
        public static let conflict = Code(name: "conflict")
        /// A one-time thing was used already (the package download).
        public static let gone = Code(name: "gone")
        /// The request names something that must exist first (a live poller for an agent package).
        public static let unprocessable = Code(name: "unprocessable")
        /// A credential was refused (a join token: one answer for unknown, spent, expired and revoked).
        public static let unauthenticated = Code(name: "unauthenticated")
        /// The caller is known but may not do this (a revoked or superseded poller SVID).
        public static let permissionDenied = Code(name: "permission_denied")
        /// The identity authority will not issue for this request (a key it cannot certify).
        public static let cannotIssue = Code(name: "cannot_issue")
        /// The database (or another dependency) cannot answer now; nothing was changed and a retry may work.
        public static let unavailable = Code(name: "unavailable")
        /// Core itself is misconfigured or broken (a sealed token its key cannot open); the log says more.
        public static let internalFailure = Code(name: "internal")
    }

    public let code: Code
    public let message: String
    /// What failed underneath, for the log only (its text may name internals the caller must not see).
    public let cause: (any Error)?

    public init(_ code: Code, _ message: String, cause: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    /// The domain's view of any failure under it; a `DomainError` passes through as it is.
    public init(_ error: any Error) {
        switch error {
        case let error as DomainError:
            self = error
        case let error as StoreError:
            switch error.code {
            case .notFound: self.init(.notFound, error.message)
            case .conflict: self.init(.conflict, error.message)
            case .invalid: self.init(.invalid, error.message)
            default:
                self.init(
                    .unavailable, "the database is unavailable; nothing was changed (\(error.message))", cause: error)
            }
        case let error as IdentityError:
            self.init(.cannotIssue, "Core cannot issue for this request: \(error.message)")
        case let error as CoreError where error.code == .secrets:
            self.init(
                .internalFailure,
                error.message + "; Core replicas must share one token key (MUSTER_TOKEN_KEY or DATA_DIR/token.key)",
                cause: error)
        default:
            self.init(.internalFailure, "internal error; see the Core log", cause: error)
        }
    }

    /// Runs a domain operation so that whatever it throws leaves it as a `DomainError`. (Untyped `throws`:
    /// typed throws through these async closures crashes the Swift 6.3 compiler.)
    static func mapping<R>(_ body: () async throws -> R) async throws -> R {
        do {
            return try await body()
        } catch {
            throw DomainError(error)
        }
    }
}
