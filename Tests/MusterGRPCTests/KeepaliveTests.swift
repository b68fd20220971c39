import Foundation
import MusterConcurrency
import Testing

@testable import MusterGRPC

#if canImport(Glibc)
    import Glibc
#endif

/// A TCP relay on loopback for one connection that can go silent: once frozen it stops reading from either
/// side but keeps both sockets open, so the kernel still acknowledges packets and nothing is ever refused —
/// what a client sees when the peer behind a cut link or a forgetful NAT has vanished.
final class FreezableRelay: Sendable {
    let port: Int
    private let listener: Int32
    private let target: Int
    private let frozen = LockedValue(false)
    private let sockets = LockedValue<[Int32]>([])

    init(to target: Int) throws {
        self.target = target
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.listener = listener
        var address = Self.loopback(port: 0)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0, listen(listener, 4) == 0 else { throw POSIXError(.EADDRINUSE) }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
        }
        port = Int(UInt16(bigEndian: address.sin_port))
        Thread.detachNewThread { [self] in acceptOne() }
    }

    func freeze() { frozen.withLock { $0 = true } }

    func close() {
        for socket in sockets.withLock({ $0 }) + [listener] { Glibc.shutdown(socket, Int32(SHUT_RDWR)) }
    }

    private static func loopback(port: UInt16) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return address
    }

    private func acceptOne() {
        let client = accept(listener, nil, nil)
        guard client >= 0 else { return }
        let server = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = Self.loopback(port: UInt16(target))
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(server, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else { return }
        sockets.withLock { $0 = [client, server] }
        Thread.detachNewThread { [self] in pump(from: client, to: server) }
        pump(from: server, to: client)
    }

    private func pump(from source: Int32, to destination: Int32) {
        var buffer = [UInt8](repeating: 0, count: 16 << 10)
        while true {
            if frozen.withLock({ $0 }) {
                usleep(50_000)
                continue
            }
            var ready = pollfd(fd: source, events: Int16(POLLIN), revents: 0)
            guard poll(&ready, 1, 50) >= 0 else { return }
            if ready.revents == 0 { continue }
            let count = read(source, &buffer, buffer.count)
            guard count > 0 else { return }
            var sent = 0
            while sent < count {
                let written = buffer[sent..<count].withUnsafeBytes { write(destination, $0.baseAddress, $0.count) }
                guard written > 0 else { return }
                sent += written
            }
        }
    }
}

@Suite("keepalive on long-lived streams")
struct KeepaliveTests {
    /// Opens a stream through a relay, freezes the relay, and gives how the stream ended within `wait`
    /// (nil: still open when the wait was over) and how long after the freeze it ended.
    func streamThroughFrozenRelay(keepalive: GRPCChannel.Keepalive?, wait: Duration) async throws -> (
        RPCError??, Duration
    ) {
        let fixture = try Fixture()
        let relay = try FreezableRelay(to: fixture.server.port)
        defer { relay.close() }
        let channel = try fixture.channel(through: "127.0.0.1:\(relay.port)", keepalive: keepalive)
        // Connected and past the handshake before the relay goes silent.
        _ = try await channel.unary(Echo.unary, echo("hello"), as: EchoResponse.self)
        let (stream, ended) = idleStream(on: channel)
        try await Task.sleep(for: .milliseconds(300))
        relay.freeze()
        let frozen = ContinuousClock.now
        let deadline = frozen + wait
        while ContinuousClock.now < deadline, ended.withLock({ $0 }) == nil {
            try await Task.sleep(for: .milliseconds(100))
        }
        let result = ended.withLock { $0 }
        let after = ContinuousClock.now - frozen
        stream.cancel()
        _ = await stream.value
        await fixture.stop()
        return (result, after)
    }

    /// A server stream that sends nothing for two minutes, and how it ended (nil while it is open).
    func idleStream(on channel: GRPCChannel) -> (Task<Void, Never>, LockedValue<RPCError??>) {
        let ended = LockedValue<RPCError??>(nil)
        let stream = Task {
            let error = await rpcError {
                try await channel.serverStreaming(
                    Echo.serverStream, echo("late", delayMs: 120_000), as: EchoResponse.self
                ) { stream in for try await _ in stream {} }
            }
            ended.withLock { $0 = .some(error) }
        }
        return (stream, ended)
    }

    @Test("a client that pings an idle stream no more often than the server allows keeps it (no 'too many pings')")
    func allowedPingsKeepTheStream() async throws {
        // The server's minimum gap between pings must reach gRPC core under its real argument name: when it did
        // not, core's default (5 min) applied, and the poller's pings every 20 s got its stream closed each minute.
        let fixture = try Fixture(minimumPingInterval: .milliseconds(500))
        let channel = try fixture.channel(keepalive: .init(interval: .seconds(1), timeout: .seconds(5)))
        _ = try await channel.unary(Echo.unary, echo("hello"), as: EchoResponse.self)
        let (stream, ended) = idleStream(on: channel)
        try await Task.sleep(for: .seconds(6))  // six pings; three refused ones close the connection
        #expect(ended.withLock { $0 } == nil, "the stream ended: \(String(describing: ended.withLock { $0 }))")
        stream.cancel()
        _ = await stream.value
        await fixture.stop()
    }

    @Test("with keepalive, a stream whose peer went silent fails with UNAVAILABLE within interval + timeout")
    func keepaliveEndsSilentStream() async throws {
        let (outcome, after) = try await streamThroughFrozenRelay(
            keepalive: .init(interval: .seconds(1), timeout: .seconds(1)), wait: .seconds(10))
        let error = try #require(outcome, "the stream was still open 10 s after its peer went silent")
        #expect(error?.code == .unavailable)
        // Measured from the freeze, not from the fixture's start (a loaded sanitizer run sets that up slowly).
        #expect(after < .seconds(10))
    }

    @Test("without keepalive, the same stream is still open (what the poller's package stream did before)")
    func noKeepaliveWaits() async throws {
        let (outcome, _) = try await streamThroughFrozenRelay(keepalive: nil, wait: .seconds(5))
        #expect(outcome == nil)
    }
}
