import Crypto
import Foundation

/// A single-use join token: 192 random bits in a URL-safe text form with the `mjt_` prefix and a checksum,
/// so secret scanners can recognise a leaked one. It is stored only as its SHA-256 hash and never printed.
public struct JoinToken: Sendable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    public static let prefix = "mjt_"
    public static let defaultTTL: TimeInterval = 15 * 60
    public static let maximumTTL: TimeInterval = 24 * 3600
    /// The one answer every refused token gets on the wire, from Core and from pollers alike: it does not tell
    /// unknown from used, expired or revoked (the audit log keeps the real reason).
    public static let refusal = "join token not accepted (unknown, already used, expired or revoked)"
    static let secretBytes = 24

    /// The clear token. Reveal it once (package download, join command) and nowhere else.
    public let secret: String

    /// A new token from the system's secure random generator.
    public static func generate() -> JoinToken {
        let body = base64URL(ByteEncoding.randomBytes(secretBytes))
        return JoinToken(secret: prefix + body + checksum(of: body))
    }

    /// Checks the form of a presented token (prefix, length, alphabet, checksum) before any lookup.
    public init(parsing text: String) throws(IdentityError) {
        let bodyLength = (Self.secretBytes * 4 + 2) / 3
        guard text.hasPrefix(Self.prefix), text.utf8.count == Self.prefix.utf8.count + bodyLength + 6 else {
            throw IdentityError(
                .tokenMalformed,
                "a join token starts with \(Self.prefix) and has \(Self.prefix.count + bodyLength + 6) characters")
        }
        let rest = text.dropFirst(Self.prefix.count)
        guard rest.utf8.allSatisfy(Self.isURLSafe) else {
            throw IdentityError(.tokenMalformed, "a join token holds only A-Z, a-z, 0-9, '-' and '_'")
        }
        let body = String(rest.prefix(bodyLength))
        guard String(rest.suffix(6)) == Self.checksum(of: body) else {
            throw IdentityError(
                .tokenMalformed, "the join token's checksum does not match; it was mistyped or truncated")
        }
        secret = text
    }

    private init(secret: String) { self.secret = secret }

    /// SHA-256 of the token: what the store keeps. The token has 192 random bits, so no salt or stretching is needed.
    public var hash: [UInt8] { Array(SHA256.hash(data: Array(secret.utf8))) }

    /// Compares this token's hash with a stored hash in constant time.
    public func matches(hash stored: [UInt8]) -> Bool {
        let mine = hash
        guard stored.count == mine.count else { return false }
        var difference: UInt8 = 0
        for index in 0..<mine.count { difference |= mine[index] ^ stored[index] }
        return difference == 0
    }

    /// Checks a requested TTL: positive and at most 24 hours.
    public static func validateTTL(_ ttl: TimeInterval) throws(IdentityError) {
        guard ttl > 0, ttl <= maximumTTL else {
            throw IdentityError(
                .badLifetime, "a join token lives between 1 second and 24 hours; \(Int(ttl)) s was asked")
        }
    }

    /// Never the secret: printing, debug-printing and dumping a token all show it redacted.
    public var description: String { "\(Self.prefix)…(redacted)" }
    public var debugDescription: String { description }
    public var customMirror: Mirror { Mirror(self, children: ["secret": description]) }

    static func checksum(of body: String) -> String {
        let digest = SHA256.hash(data: Array(body.utf8))
        return String(base64URL(Array(digest.prefix(6))).prefix(6))
    }

    static func base64URL(_ bytes: [UInt8]) -> String { ByteEncoding.base64URL(bytes) }

    static func isURLSafe(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte) || (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte)
            || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: "-")
            || byte == UInt8(ascii: "_")
    }
}
