import Foundation

/// A package's Workload API selector (DESIGN.md): which local callers the agent serves its identity to,
/// matched against the caller's Unix peer credentials. Parsed once at package creation (other types are
/// refused there) and again by the agent, which refuses to serve under a selector it cannot read.
public enum WorkloadSelector: Sendable, Hashable, CustomStringConvertible {
    case uid(UInt32)
    case gid(UInt32)
    case user(String)
    case group(String)

    /// The types an operator may give, as they are written.
    public static let supported = "unix:uid:N, unix:gid:N, unix:user:NAME or unix:group:NAME"

    public init(parsing text: String) throws(IdentityError) {
        let parts = text.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 3, parts[0] == "unix" else {
            throw IdentityError(
                .selectorUnsupported,
                "selector '\(text.prefix(64))' is not supported; Muster serves by \(Self.supported)")
        }
        let value = parts[2]
        switch parts[1] {
        case "uid", "gid":
            guard let number = Self.number(value) else {
                throw IdentityError(
                    .selectorUnsupported, "selector '\(text.prefix(64))': \(parts[1]) must be a decimal number")
            }
            self = parts[1] == "uid" ? .uid(number) : .gid(number)
        case "user", "group":
            guard Self.isName(value) else {
                throw IdentityError(
                    .selectorUnsupported,
                    "selector '\(text.prefix(64))': \(parts[1]) must be a name of 1–64 characters, "
                        + "no spaces, colons or control characters")
            }
            self = parts[1] == "user" ? .user(value) : .group(value)
        default:
            throw IdentityError(
                .selectorUnsupported,
                "selector '\(text.prefix(64))' is not supported; Muster serves by \(Self.supported)")
        }
    }

    /// Parses a package's whole list; the first one refused names itself in the error.
    public static func parseAll(_ texts: [String]) throws(IdentityError) -> [WorkloadSelector] {
        var parsed: [WorkloadSelector] = []
        for text in texts { parsed.append(try WorkloadSelector(parsing: text)) }
        return parsed
    }

    public var description: String {
        switch self {
        case .uid(let uid): "unix:uid:\(uid)"
        case .gid(let gid): "unix:gid:\(gid)"
        case .user(let name): "unix:user:\(name)"
        case .group(let name): "unix:group:\(name)"
        }
    }

    /// uid_t and gid_t are 32 bits; (uid_t)-1 means "no change" to the kernel and is never anyone's id.
    private static func number(_ text: String) -> UInt32? {
        guard !text.isEmpty, text.count <= 10, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
            let value = UInt32(text), value != UInt32.max
        else { return nil }
        return value
    }

    private static func isName(_ text: String) -> Bool {
        !text.isEmpty && text.count <= 64
            && text.unicodeScalars.allSatisfy {
                $0.value > 0x20 && $0.value != 0x3a && $0.value != 0x7f && $0.value < 0x80
            }
    }
}
