import Foundation
import MusterErrors

/// A store failure with a stable code the HTTP and gRPC layers map to a status (through `DomainError`).
public typealias StoreError = Failure<StoreErrorCode>

/// What went wrong in the store; codes can grow.
public struct StoreErrorCode: NamedErrorCode {
    public let name: String
    public static let notFound = StoreErrorCode(name: "not_found")
    public static let conflict = StoreErrorCode(name: "conflict")
    public static let invalid = StoreErrorCode(name: "invalid")
    public static let unavailable = StoreErrorCode(name: "database_unavailable")
    public static let migration = StoreErrorCode(name: "migration_failed")
}
