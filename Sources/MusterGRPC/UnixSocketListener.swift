import CGRPCCore
import CMusterGRPCShim
import Foundation
import MusterConcurrency

#if canImport(Glibc)
    import Glibc
#endif

/// Who is at the other end of a Unix socket connection, as the kernel says (`SO_PEERCRED`), read when the
/// connection was accepted.
public struct PeerCredentials: Sendable, Equatable {
    public let pid: Int32
    public let uid: UInt32
    public let gid: UInt32

    public init(pid: Int32, uid: UInt32, gid: UInt32) {
        self.pid = pid
        self.uid = uid
        self.gid = gid
    }
}

/// A Unix socket the server accepts on itself: gRPC core has no way to tell a handler who connected, so each
/// connection is accepted here, its peer credentials read, and only then handed to gRPC core
/// (`grpc_server_add_channel_from_fd`, plaintext: the socket's file mode and the peer check are the protection).
/// gRPC core names such a connection's peer `fd:N`; the credentials are kept by that descriptor until it is reused.
final class UnixSocketListener: Sendable {
    let path: String
    private let descriptor: Int32
    private let credentials = LockedValue<[Int32: PeerCredentials]>([:])
    private let stopped = OneShot<Void>()

    /// Whether something accepts connections at `address` (a live socket, not one left behind).
    private static func answers(_ address: sockaddr_un) -> Bool {
        let probe = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard probe >= 0 else { return false }
        defer { close(probe) }
        var address = address
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(probe, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) == 0
            }
        }
    }

    /// Binds `path` (a stale socket left there is replaced; one another process still listens on, or any other
    /// file, is refused) with `mode`.
    init(path: String, mode: mode_t) throws(RPCError) {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard path.utf8.count < capacity else {
            throw RPCError(code: .invalidArgument, message: "socket path \(path) is longer than \(capacity - 1) bytes")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            for (index, byte) in path.utf8.enumerated() { buffer[index] = byte }
        }
        var existing = stat()
        if lstat(path, &existing) == 0 {
            guard existing.st_mode & S_IFMT == S_IFSOCK else {
                throw RPCError(code: .unavailable, message: "\(path) exists and is not a socket; not replaced")
            }
            guard !Self.answers(address) else {
                throw RPCError(code: .unavailable, message: "\(path) is in use by another process; not replaced")
            }
            unlink(path)
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard fd >= 0, bound == 0, chmod(path, mode) == 0, listen(fd, 128) == 0 else {
            let reason = String(cString: strerror(errno))
            if fd >= 0 { close(fd) }
            throw RPCError(code: .unavailable, message: "cannot listen on unix socket \(path): \(reason)")
        }
        self.path = path
        descriptor = fd
    }

    /// Accepts until `stop`, on a thread of its own, handing each connection to `server`.
    func start(server: OpaquePointer) {
        // gRPC core's server API is thread-safe; the server outlives this thread (`stop` waits for it).
        nonisolated(unsafe) let server = server
        Thread.detachNewThread { [self] in
            let insecure = grpc_insecure_server_credentials_create()
            defer {
                grpc_server_credentials_release(insecure)
                stopped.fire()
            }
            while true {
                let connection = accept(descriptor, nil, nil)
                if connection < 0 {
                    if errno == EINTR || errno == ECONNABORTED { continue }
                    return
                }
                // gRPC core's endpoints expect a non-blocking descriptor (a blocking read would hold its poller).
                _ = fcntl(connection, F_SETFD, FD_CLOEXEC)
                _ = fcntl(connection, F_SETFL, fcntl(connection, F_GETFL) | O_NONBLOCK)
                var pid: Int32 = 0
                var uid: UInt32 = 0
                var gid: UInt32 = 0
                guard muster_peer_credentials(connection, &pid, &uid, &gid) == 0 else {
                    close(connection)
                    continue
                }
                credentials.withLock { $0[connection] = PeerCredentials(pid: pid, uid: uid, gid: gid) }
                grpc_server_add_channel_from_fd(server, connection, insecure)
            }
        }
    }

    /// The credentials of the connection gRPC core calls `peer` (`fd:N`), if it came through this socket.
    func credentials(ofPeer peer: String) -> PeerCredentials? {
        guard peer.hasPrefix("fd:"), let fd = Int32(peer.dropFirst(3)) else { return nil }
        return credentials.withLock { $0[fd] }
    }

    /// Stops accepting (connections already handed over stay with gRPC core) and removes the socket file.
    func stop() async {
        Glibc.shutdown(descriptor, Int32(SHUT_RDWR))
        _ = await stopped.wait(timeout: .seconds(5))
        close(descriptor)
        unlink(path)
    }
}
