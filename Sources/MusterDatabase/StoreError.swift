import Foundation
import MusterErrors

/// A store failure with a stable code the HTTP and gRPC layers map to a status.
public struct StoreError: CodedError {
    /// What went wrong; codes can grow.
    public struct Code: NamedErrorCode {
        public let name: String
        public static let notFound = Code(name: "not_found")
        public static let conflict = Code(name: "conflict")
        public static let invalid = Code(name: "invalid")
        public static let unavailable = Code(name: "database_unavailable")
        public static let migration = Code(name: "migration_failed")
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
}
