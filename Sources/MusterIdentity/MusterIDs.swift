/// Builders for the SPIFFE IDs Muster issues (see DESIGN.md, "Identities").
public enum MusterIDs {
    /// Why a component name is refused.
    public struct NameError: Error, Equatable, CustomStringConvertible {
        public let name: String
        public let reason: String
        public var description: String { "invalid name '\(name)': \(reason)" }
    }

    /// Checks a poller, agent or checker name: `[a-z0-9._-]`, 1–63 bytes, not `.` or `..`.
    public static func checkName(_ name: String) throws(NameError) {
        guard (1...63).contains(name.utf8.count) else {
            throw NameError(name: name, reason: "a name is 1 to 63 characters")
        }
        guard name != ".", name != ".." else { throw NameError(name: name, reason: "a name may not be '.' or '..'") }
        let allowed = name.utf8.allSatisfy { byte in
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
                || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
        }
        guard allowed else { throw NameError(name: name, reason: "a name holds only a-z, 0-9, '.', '_' and '-'") }
    }

    public static func core(trustDomain: String) throws -> SPIFFEID {
        try SPIFFEID(trustDomain: trustDomain, segments: ["muster", "core"])
    }

    public static func poller(trustDomain: String, name: String) throws -> SPIFFEID {
        try checkName(name)
        return try SPIFFEID(trustDomain: trustDomain, segments: ["muster", "poller", name])
    }

    public static func agent(trustDomain: String, poller: String, name: String) throws -> SPIFFEID {
        try checkName(poller)
        try checkName(name)
        return try SPIFFEID(trustDomain: trustDomain, segments: ["muster", "poller", poller, "agent", name])
    }

    public static func checker(trustDomain: String, poller: String, name: String) throws -> SPIFFEID {
        try checkName(poller)
        try checkName(name)
        return try SPIFFEID(trustDomain: trustDomain, segments: ["muster", "poller", poller, "checker", name])
    }
}

/// A Muster SPIFFE ID parsed once into what it names; policies match on this value, never on strings.
public enum MusterID: Hashable, Sendable, CustomStringConvertible {
    case core
    case poller(String)
    case agent(poller: String, name: String)
    case checker(poller: String, name: String)

    /// Parses `id`'s path (`/muster/core`, `/muster/poller/P`, `/muster/poller/P/agent/A`, `/muster/poller/P/checker/C`);
    /// nil for anything else, including names that break the naming rule.
    public init?(_ id: SPIFFEID) {
        let segments = id.segments.map(String.init)
        guard segments.first == "muster" else { return nil }
        switch segments.count {
        case 2 where segments[1] == "core":
            self = .core
        case 3 where segments[1] == "poller" && (try? MusterIDs.checkName(segments[2])) != nil:
            self = .poller(segments[2])
        case 5
        where segments[1] == "poller" && (try? MusterIDs.checkName(segments[2])) != nil
            && (try? MusterIDs.checkName(segments[4])) != nil:
            switch segments[3] {
            case "agent": self = .agent(poller: segments[2], name: segments[4])
            case "checker": self = .checker(poller: segments[2], name: segments[4])
            default: return nil
            }
        default:
            return nil
        }
    }

    /// True for an agent or checker of the poller `poller` (what that poller may issue SVIDs for).
    public func isServed(by poller: MusterID) -> Bool {
        switch (self, poller) {
        case (.agent(let parent, _), .poller(let name)), (.checker(let parent, _), .poller(let name)): parent == name
        default: false
        }
    }

    /// The poller this ID belongs to: the poller itself, or the parent of an agent or checker.
    public var pollerName: String? {
        switch self {
        case .core: nil
        case .poller(let name): name
        case .agent(let poller, _), .checker(let poller, _): poller
        }
    }

    /// `agent` or `checker` for an edge component; nil otherwise.
    public var componentKind: String? {
        switch self {
        case .agent: "agent"
        case .checker: "checker"
        case .core, .poller: nil
        }
    }

    public var description: String {
        switch self {
        case .core: "core"
        case .poller(let name): "poller \(name)"
        case .agent(let poller, let name): "agent \(name) of poller \(poller)"
        case .checker(let poller, let name): "checker \(name) of poller \(poller)"
        }
    }
}
