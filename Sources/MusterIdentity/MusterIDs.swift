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
        guard (1...63).contains(name.utf8.count) else { throw NameError(name: name, reason: "a name is 1 to 63 characters") }
        guard name != ".", name != ".." else { throw NameError(name: name, reason: "a name may not be '.' or '..'") }
        let allowed = name.utf8.allSatisfy { byte in
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
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

    /// The poller a Muster ID belongs to (`edge-1` for `/muster/poller/edge-1/agent/a`), if any.
    public static func pollerName(of id: SPIFFEID) -> String? {
        let segments = id.segments
        guard segments.count >= 3, segments[0] == "muster", segments[1] == "poller" else { return nil }
        return String(segments[2])
    }
}
