import Foundation
import MusterIdentity

#if canImport(Glibc)
    import Glibc
#endif

/// What this machine says about itself when it enrolls: its machine ID, names, addresses and OS. Read from
/// the host, never from the network; the operator sees them beside what the poller observed.
enum MachineFacts {
    static func gather(machineIDFile: String) throws -> EnrollmentFacts {
        guard let data = FileManager.default.contents(atPath: machineIDFile) else {
            throw AgentError("cannot read the machine ID from \(machineIDFile) (--machine-id-file)")
        }
        let machineID = String(decoding: data.prefix(256), as: UTF8.self).trimmingCharacters(
            in: .whitespacesAndNewlines)
        guard !machineID.isEmpty else { throw AgentError("\(machineIDFile) holds no machine ID") }
        let host = hostname()
        var system = utsname()
        uname(&system)
        let facts = EnrollmentFacts(
            machineID: machineID, hostname: host, fqdn: fqdn(of: host), addresses: addresses(),
            os: osRelease(), kernel: field(of: &system.release), arch: field(of: &system.machine))
        do { try facts.validate() } catch { throw AgentError("this machine's facts: \(error.message)") }
        return facts
    }

    static func hostname() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "" }
        return String(cString: buffer)
    }

    /// The canonical name the resolver gives the hostname (from /etc/hosts first); the hostname when it is
    /// dotted already; empty when neither says more.
    static func fqdn(of host: String) -> String {
        if host.contains(".") { return host }
        var hints = addrinfo()
        hints.ai_flags = AI_CANONNAME
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, nil, &hints, &result) == 0, let first = result else { return "" }
        defer { freeaddrinfo(result) }
        guard let name = first.pointee.ai_canonname.map({ String(cString: $0) }), name.contains(".") else { return "" }
        return String(name.prefix(253))
    }

    /// The host's IPv4 and global IPv6 addresses, loopback and link-local left out.
    static func addresses() -> [String] {
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0 else { return [] }
        defer { freeifaddrs(list) }
        var found: [String] = []
        var cursor = list
        while let entry = cursor {
            defer { cursor = entry.pointee.ifa_next }
            guard let address = entry.pointee.ifa_addr else { continue }
            let family = Int32(address.pointee.sa_family)
            var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
            if family == AF_INET {
                var ipv4 = address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr }
                inet_ntop(AF_INET, &ipv4, &buffer, socklen_t(buffer.count))
            } else if family == AF_INET6 {
                var ipv6 = address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee.sin6_addr }
                inet_ntop(AF_INET6, &ipv6, &buffer, socklen_t(buffer.count))
            } else {
                continue
            }
            let text = String(cString: buffer)
            if text.hasPrefix("127.") || text == "::1" || text.lowercased().hasPrefix("fe80:") { continue }
            if !found.contains(text) { found.append(text) }
        }
        return Array(found.prefix(EnrollmentFacts.maxAddresses))
    }

    /// `ID VERSION_ID` from /etc/os-release, e.g. "debian 12".
    static func osRelease() -> String {
        guard let data = FileManager.default.contents(atPath: "/etc/os-release") else { return "" }
        var values: [String: String] = [:]
        for line in String(decoding: data, as: UTF8.self).split(whereSeparator: \.isNewline) {
            let parts = line.split(separator: "=", maxSplits: 1)
            guard parts.count == 2 else { continue }
            values[String(parts[0])] = parts[1].trimmingCharacters(in: CharacterSet(charactersIn: "\"'"))
        }
        return [values["ID"], values["VERSION_ID"]].compactMap { $0 }.joined(separator: " ")
    }

    static func field<T>(of value: inout T) -> String {
        withUnsafeBytes(of: &value) { raw in
            String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
    }
}
