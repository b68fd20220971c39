import Foundation

/// What an enrolling machine says about itself (DESIGN.md: an enrollment's `claimed`). Nothing here is
/// verified; it is shown to the operator beside what the poller observed. Checked the same way at the
/// poller (for the agent's error) and at Core (a poller's relay is not trusted either).
public struct EnrollmentFacts: Codable, Sendable, Equatable {
    public var machineID: String
    public var hostname: String
    public var fqdn: String
    public var addresses: [String]
    public var os: String
    public var kernel: String
    public var arch: String

    public init(
        machineID: String, hostname: String, fqdn: String, addresses: [String], os: String, kernel: String,
        arch: String
    ) {
        self.machineID = machineID
        self.hostname = hostname
        self.fqdn = fqdn
        self.addresses = addresses
        self.os = os
        self.kernel = kernel
        self.arch = arch
    }

    enum CodingKeys: String, CodingKey {
        case hostname, fqdn, addresses, os, kernel, arch
        case machineID = "machine_id"
    }

    /// Most addresses a request may claim.
    public static let maxAddresses = 32

    /// Refuses the first field that is empty where required, too long, or holds a control character; the
    /// message names the field.
    public func validate() throws(IdentityError) {
        let fields: [(String, String, Int, Bool)] = [
            ("machine_id", machineID, 64, true), ("hostname", hostname, 253, true), ("fqdn", fqdn, 253, false),
            ("os", os, 128, false), ("kernel", kernel, 128, false), ("arch", arch, 32, false),
        ]
        for (name, value, limit, required) in fields {
            if required, value.isEmpty { throw IdentityError(.factsInvalid, "claimed.\(name) is required") }
            if value.utf8.count > limit {
                throw IdentityError(.factsInvalid, "claimed.\(name) is longer than \(limit) bytes")
            }
            if let control = TextRules.firstControl(in: value) {
                throw IdentityError(.factsInvalid, "claimed.\(name) holds a control character (\(control))")
            }
        }
        guard machineID.allSatisfy({ $0.isHexDigit || $0 == "-" }) else {
            throw IdentityError(.factsInvalid, "claimed.machine_id holds only hex digits and '-'")
        }
        guard addresses.count <= Self.maxAddresses else {
            throw IdentityError(.factsInvalid, "claimed.addresses lists more than \(Self.maxAddresses) addresses")
        }
        for address in addresses {
            guard !address.isEmpty, address.utf8.count <= 64, address.allSatisfy({ $0.isHexDigit || ".:".contains($0) })
            else {
                throw IdentityError(.factsInvalid, "claimed.addresses holds '\(address.prefix(64))', not an IP address")
            }
        }
    }

    /// The name an approval starts from: the hostname's first label, lowercased, cut to a valid name.
    public var suggestedName: String {
        let label = hostname.split(separator: ".").first.map(String.init) ?? hostname
        let cleaned = String(
            label.lowercased().map {
                ("a"..."z").contains($0) || ("0"..."9").contains($0) || "-_".contains($0) ? $0 : "-"
            }
            .prefix(63))
        return (try? MusterIDs.checkName(cleaned)) != nil ? cleaned : "machine-" + machineID.prefix(12)
    }
}
