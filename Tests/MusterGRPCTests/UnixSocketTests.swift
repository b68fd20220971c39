import Foundation
import MusterConcurrency
import Testing

@testable import MusterGRPC

#if canImport(Glibc)
    import Glibc
#endif

/// Answers with the caller's peer credentials as the server saw them (`uid:gid:pid`, or `none`).
struct CredentialsService: GRPCService {
    func register(with router: inout GRPCRouter) {
        router.unary(Echo.unary, EchoRequest.self) { _, context in
            let text = context.peerCredentials.map { "\($0.uid):\($0.gid):\($0.pid)" } ?? "none"
            return EchoResponse.with { $0.payload = Data(text.utf8) }
        }
    }
}

@Suite("serving on a Unix socket")
struct UnixSocketTests {
    static func socketPath() -> String {
        NSTemporaryDirectory() + "muster-grpc-\(UUID().uuidString.prefix(8)).sock"
    }

    @Test("a handler learns the caller's uid, gid and pid from the kernel; the socket has the mode asked for")
    func credentials() async throws {
        let path = Self.socketPath()
        let server = try GRPCServer(
            configuration: .init(unixSocket: path, mode: 0o666), services: [CredentialsService()])
        var info = stat()
        #expect(stat(path, &info) == 0 && info.st_mode & 0o777 == 0o666 && info.st_mode & S_IFMT == S_IFSOCK)
        #expect(server.socketPath == path)
        for _ in 0..<3 {
            // A channel each time: every connection is accepted and checked on its own.
            let channel = try GRPCChannel(target: "unix:\(path)", security: .insecure)
            let answer = try await channel.unary(Echo.unary, echo("who"), as: EchoResponse.self)
            #expect(String(decoding: answer.payload, as: UTF8.self) == "\(getuid()):\(getgid()):\(getpid())")
        }
        await server.shutdown(grace: .seconds(2))
        #expect(access(path, F_OK) != 0, "the socket file is removed at shutdown")
    }

    @Test("a stale socket file is replaced; a live one, or any other file at the path, is refused and kept")
    func stalePaths() async throws {
        let path = Self.socketPath()
        // A process that died leaves its socket behind: bound, nobody listening. The next server takes it over.
        Self.leaveStaleSocket(at: path)
        let first = try GRPCServer(
            configuration: .init(unixSocket: path, mode: 0o600), services: [CredentialsService()])
        // A second server must not steal the path from one that is still serving.
        #expect(throws: RPCError.self) {
            _ = try GRPCServer(configuration: .init(unixSocket: path, mode: 0o600), services: [])
        }
        // The refused attempt left the first server's socket in place: it still answers.
        _ = try await GRPCChannel(target: "unix:\(path)", security: .insecure).unary(
            Echo.unary, echo("still mine"), as: EchoResponse.self)
        await first.shutdown(grace: .seconds(1))
        let file = Self.socketPath()
        FileManager.default.createFile(atPath: file, contents: Data("keep".utf8))
        #expect(throws: RPCError.self) {
            _ = try GRPCServer(configuration: .init(unixSocket: file, mode: 0o600), services: [])
        }
        #expect(FileManager.default.contents(atPath: file) == Data("keep".utf8))
        unlink(file)
    }

    /// Binds a Unix socket at `path` and closes it without unlinking: what a killed server leaves.
    static func leaveStaleSocket(at path: String) {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            for (index, byte) in path.utf8.enumerated() { buffer[index] = byte }
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        close(fd)
    }

    @Test("a thousand connects and disconnects leave no descriptor behind")
    func noLeak() async throws {
        let path = Self.socketPath()
        let server = try GRPCServer(
            configuration: .init(unixSocket: path, mode: 0o600), services: [CredentialsService()])
        func openDescriptors() -> Int {
            (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? 0
        }
        // One call first, so gRPC core's own descriptors (its pollers, its wakeup fds) exist before counting.
        _ = try await GRPCChannel(target: "unix:\(path)", security: .insecure).unary(
            Echo.unary, echo("warm"), as: EchoResponse.self)
        let before = openDescriptors()
        for _ in 0..<1000 {
            let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &address.sun_path) { buffer in
                for (index, byte) in path.utf8.enumerated() { buffer[index] = byte }
            }
            _ = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                }
            }
            close(fd)
        }
        var after = openDescriptors()
        for _ in 0..<50 where after > before + 8 {
            try await Task.sleep(for: .milliseconds(100))
            after = openDescriptors()
        }
        #expect(after <= before + 8, "descriptors before \(before), after 1,000 connects \(after)")
        await server.shutdown(grace: .seconds(2))
    }
}
