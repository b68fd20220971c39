/// A parsed `host:port` (IPv6 in brackets), and the SANs a serving SVID carries for an advertised address.
public enum HostPort {
    public static func parse(_ text: String) throws(IdentityError) -> (host: String, port: Int) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else {
            throw IdentityError(.badAddress, "'\(text)' is not host:port")
        }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return (host, port)
    }

    /// The SANs a serving SVID carries for an advertised host: an IP address SAN for a literal address,
    /// a DNS SAN for a name.
    public static func subjectAltNames(host: String) -> (dnsNames: [String], ipAddresses: [String]) {
        let isIP = host.contains(":") || host.allSatisfy { $0.isNumber || $0 == "." }
        return isIP ? ([], [host]) : ([host], [])
    }

    /// The SANs for an advertised `host:port`, or nil when it is not one (or names no host).
    public static func subjectAltNames(advertise: String) -> (dnsNames: [String], ipAddresses: [String])? {
        guard let host = try? parse(advertise).host, !host.isEmpty else { return nil }
        return subjectAltNames(host: host)
    }
}
