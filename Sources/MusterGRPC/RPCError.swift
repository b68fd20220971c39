/// A gRPC status that is not OK: a code, a message for people, trailing metadata and an optional cause.
/// Equality compares the code, so tests assert on codes and users read messages.
public struct RPCError: Error, Sendable, CustomStringConvertible {
    /// A gRPC status code; a struct of constants so codes can grow.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let rawValue: Int32
        public init(rawValue: Int32) { self.rawValue = rawValue }

        public static let ok = Code(rawValue: 0)
        public static let cancelled = Code(rawValue: 1)
        public static let unknown = Code(rawValue: 2)
        public static let invalidArgument = Code(rawValue: 3)
        public static let deadlineExceeded = Code(rawValue: 4)
        public static let notFound = Code(rawValue: 5)
        public static let alreadyExists = Code(rawValue: 6)
        public static let permissionDenied = Code(rawValue: 7)
        public static let resourceExhausted = Code(rawValue: 8)
        public static let failedPrecondition = Code(rawValue: 9)
        public static let aborted = Code(rawValue: 10)
        public static let outOfRange = Code(rawValue: 11)
        public static let unimplemented = Code(rawValue: 12)
        public static let internalError = Code(rawValue: 13)
        public static let unavailable = Code(rawValue: 14)
        public static let dataLoss = Code(rawValue: 15)
        public static let unauthenticated = Code(rawValue: 16)

        static let names = [
            "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
            "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
            "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
            "UNAUTHENTICATED",
        ]
        public var description: String {
            rawValue >= 0 && Int(rawValue) < Self.names.count ? Self.names[Int(rawValue)] : "CODE_\(rawValue)"
        }
    }

    public var code: Code
    public var message: String
    public var metadata: Metadata
    public var cause: (any Error)?

    public init(code: Code, message: String, metadata: Metadata = [:], cause: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.metadata = metadata
        self.cause = cause
    }

    public var description: String { "\(code): \(message)" }
}

extension RPCError: Equatable {
    public static func == (lhs: RPCError, rhs: RPCError) -> Bool { lhs.code == rhs.code }
}
