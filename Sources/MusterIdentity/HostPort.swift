import Foundation

/// A parsed `host:port` (IPv6 in brackets), and the SANs a serving SVID carries for an advertised address.
public enum HostPort {
    /// Checks an address a component advertises (and that Core copies into root-signed SANs, join commands and
    /// READMEs): a DNS hostname (letters, digits, '-', labels of 1–63, at most 253 in all, no wildcard, no
    /// trailing dot) or an IP literal (IPv6 in brackets), then a port 1–65535. Returns it normalised (lowercase).
    public static func validateAdvertised(_ text: String) throws(IdentityError) -> (
        host: String, port: Int, text: String
    ) {
        guard text.utf8.count <= 261, text.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f }) else {
            throw IdentityError(
                .badAddress, "an advertised address is at most 261 printable ASCII characters without spaces")
        }
        let (host, port) = try parse(text)
        guard (1...65535).contains(port) else {
            throw IdentityError(.badAddress, "the advertised port must be 1 to 65535")
        }
        let bracketed = text.hasPrefix("[")
        if (try? IPAddressBytes.parse(host)) != nil {
            guard host.contains(":") == bracketed else {
                throw IdentityError(.badAddress, "an IPv6 address is written in brackets: [ADDR]:PORT")
            }
            return (host.lowercased(), port, text.lowercased())
        }
        guard !bracketed else { throw IdentityError(.badAddress, "'\(host)' in brackets is not an IPv6 address") }
        let lower = host.lowercased()
        guard isHostname(lower) else {
            throw IdentityError(
                .badAddress,
                "'\(host)' is neither a hostname (letters, digits, '-', dot-separated labels, no wildcard) nor an IP address"
            )
        }
        return (lower, port, "\(lower):\(port)")
    }

    /// A DNS hostname by RFC 1123: labels of letters, digits and inner hyphens; not all-numeric (that is an
    /// address, or a bad one).
    static func isHostname(_ host: String) -> Bool {
        guard (1...253).contains(host.utf8.count) else { return false }
        let labels = host.split(separator: ".", omittingEmptySubsequences: false)
        let wellFormed = labels.allSatisfy { label in
            (1...63).contains(label.utf8.count) && label.first != "-" && label.last != "-"
                && label.utf8.allSatisfy { (0x61...0x7a).contains($0) || (0x30...0x39).contains($0) || $0 == 0x2d }
        }
        return wellFormed && !(labels.last?.allSatisfy(\.isNumber) ?? true)
    }

    /// True for a loopback host (`localhost`, 127.0.0.0/8, ::1): it names only the machine itself.
    public static func isLoopback(_ host: String) -> Bool {
        if host == "localhost" || host == "::1" { return true }
        guard let bytes = try? IPAddressBytes.parse(host) else { return false }
        return bytes.count == 4 && bytes[0] == 127
    }

    public static func parse(_ text: String) throws(IdentityError) -> (host: String, port: Int) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
            (0...65535).contains(port)
        else {
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
}
