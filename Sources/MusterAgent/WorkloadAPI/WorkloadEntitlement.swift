import Foundation
import MusterGRPC
import MusterIdentity

#if canImport(Glibc)
    import Glibc
#endif

/// Who may fetch the agent's identity over the Workload API: a caller whose Unix peer credentials (as the
/// kernel gave them when it connected) match any one of the package's selectors; with no selectors, only a
/// caller running as the agent's own uid. Group selectors match the caller's primary (effective) gid from
/// `SO_PEERCRED`; supplementary groups are not read (they would come from `/proc/PID`, which a caller can
/// race by exiting and letting the pid be reused).
public struct WorkloadEntitlement: Sendable {
    public let agentUID: UInt32

    public init(agentUID: UInt32 = getuid()) { self.agentUID = agentUID }

    public func allows(_ caller: PeerCredentials, under selectors: [WorkloadSelector]) -> Bool {
        guard !selectors.isEmpty else { return caller.uid == agentUID }
        return selectors.contains { selector in
            switch selector {
            case .uid(let uid): caller.uid == uid
            case .gid(let gid): caller.gid == gid
            case .user(let name): Self.userName(of: caller.uid) == name
            case .group(let name): Self.groupName(of: caller.gid) == name
            }
        }
    }

    /// The account database's name for `uid` (passwd, through NSS), nil if it has none.
    static func userName(of uid: UInt32) -> String? {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16 * 1024)
        guard getpwuid_r(uid, &entry, &buffer, buffer.count, &result) == 0, result != nil, let name = entry.pw_name
        else { return nil }
        return String(cString: name)
    }

    /// The group database's name for `gid`, nil if it has none.
    static func groupName(of gid: UInt32) -> String? {
        var entry = group()
        var result: UnsafeMutablePointer<group>?
        var buffer = [CChar](repeating: 0, count: 64 * 1024)
        guard getgrgid_r(gid, &entry, &buffer, buffer.count, &result) == 0, result != nil, let name = entry.gr_name
        else { return nil }
        return String(cString: name)
    }
}
