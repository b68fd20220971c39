import Foundation
import MusterErrors

/// A refusal the operator sees: an HTTP status, a stable code and one clear message (`{error, message}`).
public struct APIError: CodedError {
    public struct Code: NamedErrorCode {
        public let name: String
        public let status: Int
        public static let badRequest = Code(name: "bad_request", status: 400)
        public static let unauthorized = Code(name: "unauthorized", status: 401)
        public static let forbidden = Code(name: "forbidden", status: 403)
        public static let notFound = Code(name: "not_found", status: 404)
        public static let methodNotAllowed = Code(name: "method_not_allowed", status: 405)
        public static let conflict = Code(name: "conflict", status: 409)
        public static let gone = Code(name: "gone", status: 410)
        public static let tooLarge = Code(name: "payload_too_large", status: 413)
        public static let unprocessable = Code(name: "unprocessable", status: 422)
        public static let rateLimited = Code(name: "rate_limited", status: 429)
        public static let internalError = Code(name: "internal", status: 500)
        public static let unavailable = Code(name: "unavailable", status: 503)
    }

    public let code: Code
    public let message: String
    /// Seconds to wait, for 429.
    public var retryAfter: Int?
    /// For 405: the methods the path does allow (sent as `Allow`, RFC 9110 §15.5.6).
    public var allow: [String]?

    public init(_ code: Code, _ message: String, retryAfter: Int? = nil) {
        self.code = code
        self.message = message
        self.retryAfter = retryAfter
    }

    public var description: String { "\(code.name): \(message)" }

}
