/// An error with a stable code (a struct of constants, so codes can grow) and one human message: tests and
/// transports match on the code, users read the message. Equality and hashing look at the code only.
public protocol CodedError: Error, CustomStringConvertible, Hashable, Sendable {
    associatedtype Code: Hashable & Sendable
    var code: Code { get }
    var message: String { get }
}

extension CodedError {
    public var description: String { message }
    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.code == rhs.code }
    public func hash(into hasher: inout Hasher) { hasher.combine(code) }
}

/// A code named by a short stable string (`not_found`, `csrMalformed`), for errors whose codes are just names.
public protocol NamedErrorCode: Hashable, Sendable, CustomStringConvertible {
    var name: String { get }
}

extension NamedErrorCode {
    public var description: String { name }
}

/// An error that ends a Muster executable with its own exit status and one line for the operator
/// (`Runtime.main` maps it; 1 unless the error says otherwise).
public protocol ExitCodeError: Error {
    var exitCode: Int32 { get }
    var message: String { get }
}

extension ExitCodeError {
    public var exitCode: Int32 { 1 }
}

/// A coded error that is nothing but its code and message; each module names its own as this type over its own
/// code struct (`IdentityError`, `SPIFFEIDError`, `ArchiveError`, `StoreError`, `CoreError`).
public struct Failure<Code: NamedErrorCode>: CodedError {
    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public init(code: Code, message: String) {
        self.init(code, message)
    }
}
