import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The running agent's Workload API as `muster-agent status` reports it: `DIR/workload.json` (0644, no
/// secrets), rewritten by `run` within a second of a change and removed when `run` stops.
public struct WorkloadStatus: Codable, Sendable, Equatable {
    public var socket: String
    public var pid: Int32
    /// `serving`, `unavailable` or `revoked`.
    public var state: String
    /// The SPIFFE ID served, or why none is.
    public var detail: String
    public var streams: Int

    static func path(in state: AgentState) -> String { state.directory + "/workload.json" }

    init(socket: String, identity: WorkloadIdentity) {
        self.socket = socket
        pid = getpid()
        streams = identity.openStreams
        switch identity.current {
        case .serving(let svid): (state, detail) = ("serving", svid.spiffeID)
        case .unavailable(let reason): (state, detail) = ("unavailable", reason)
        case .revoked(let reason): (state, detail) = ("revoked", reason)
        }
    }

    /// Keeps the file current until cancelled, then removes it.
    public static func keepWritten(socket: String, identity: WorkloadIdentity, state: AgentState) async {
        let path = path(in: state)
        var written: WorkloadStatus?
        while !Task.isCancelled {
            let now = WorkloadStatus(socket: socket, identity: identity)
            if now != written, let data = try? JSONEncoder().encode(now) {
                let temporary = path + ".tmp"
                if FileManager.default.createFile(
                    atPath: temporary, contents: data, attributes: [.posixPermissions: 0o644]),
                    rename(temporary, path) == 0
                {
                    written = now
                }
            }
            try? await Task.sleep(for: .seconds(1))
        }
        unlink(path)
    }

    /// What the running agent last wrote; nil when no agent serving the Workload API runs for this directory.
    public static func read(state: AgentState) -> WorkloadStatus? {
        guard let data = FileManager.default.contents(atPath: path(in: state)),
            let status = try? JSONDecoder().decode(WorkloadStatus.self, from: data),
            kill(status.pid, 0) == 0 || errno == EPERM
        else { return nil }
        return status
    }
}
