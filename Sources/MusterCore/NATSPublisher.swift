import Foundation
import Logging
import MusterStore
import NIOCore
import NIOPosix
import ServiceLifecycle

/// Publishes the events outbox to NATS as `muster.events.<type>`, in id order, at least once: a batch is
/// confirmed by PING/PONG before the shared cursor moves, so a crash re-sends rather than drops. Each
/// message carries its event id so subscribers can drop a repeat.
public struct NATSPublisher: Service, CustomStringConvertible {
    let url: String
    let hub: EventHub
    let metrics: CoreMetrics
    let logger: Logger
    static let cursorName = "nats"
    public var description: String { "NATSPublisher(\(url))" }

    public init(url: String, hub: EventHub, metrics: CoreMetrics, logger: Logger) {
        self.url = url
        self.hub = hub
        self.metrics = metrics
        self.logger = logger
    }

    public func run() async throws {
        let (host, port) = try Self.parse(url)
        await cancelWhenGracefulShutdown {
            var backoff = 0.2
            while !Task.isCancelled {
                do {
                    try await session(host: host, port: port) { backoff = 0.2 }
                } catch is CancellationError {
                    return
                } catch {
                    logger.warning(
                        "NATS publisher disconnected; retrying", metadata: ["url": "\(url)", "error": "\(error)"])
                    try? await Task.sleep(for: .milliseconds(Int(backoff * 1000 * Double.random(in: 0.8...1.2))))
                    backoff = min(backoff * 2, 10)
                    continue
                }
            }
        }
    }

    static func parse(_ url: String) throws -> (String, Int) {
        guard let components = URLComponents(string: url), components.scheme == "nats", let host = components.host
        else {
            throw CoreError(.invalidConfiguration, "--nats must be nats://host:port, got '\(url)'")
        }
        return (host, components.port ?? 4222)
    }

    private func session(host: String, port: Int, connected: () -> Void) async throws {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.seconds(3))
            .connect(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(NATSLineDecoder()))
                    return try NIOAsyncChannel<String, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        try await channel.executeThenClose { inbound, outbound in
            var lines = inbound.makeAsyncIterator()
            guard let info = try await lines.next(), info.hasPrefix("INFO") else {
                throw CoreError(.invalidConfiguration, "not a NATS server at \(url)")
            }
            try await outbound.write(
                ByteBuffer(
                    string:
                        #"CONNECT {"verbose":false,"pedantic":false,"name":"muster-core","lang":"swift","version":"1","protocol":1}"#
                        + "\r\n"))
            logger.info("NATS publisher connected", metadata: ["url": "\(url)"])
            connected()
            var cursor = try await hub.store.eventCursor(Self.cursorName)
            var caughtUp: UInt64?
            while !Task.isCancelled {
                let events = try await hub.next(after: cursor, caughtUp: &caughtUp)
                guard let last = events.last?.id else { continue }
                var buffer = ByteBuffer()
                for event in events {
                    let payload = Self.message(event)
                    buffer.writeString("PUB muster.events.\(event.type) \(payload.utf8.count)\r\n\(payload)\r\n")
                }
                buffer.writeString("PING\r\n")
                try await outbound.write(buffer)
                logger.debug("NATS batch sent", metadata: ["count": "\(events.count)", "last": "\(last)"])
                try await awaitPong(&lines, outbound: outbound)
                logger.debug("NATS batch confirmed", metadata: ["last": "\(last)"])
                metrics.eventsPublished.increment(by: Int64(events.count))
                if try await hub.store.advanceEventCursor(Self.cursorName, from: cursor, to: last) {
                    cursor = last
                } else {
                    // Another replica published past this batch: read from where it left the cursor, at once.
                    cursor = try await hub.store.eventCursor(Self.cursorName)
                    caughtUp = nil
                }
            }
        }
    }

    private func awaitPong(
        _ lines: inout NIOAsyncChannelInboundStream<String>.AsyncIterator,
        outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    ) async throws {
        while let line = try await lines.next() {
            if line == "PONG" { return }
            if line == "PING" { try await outbound.write(ByteBuffer(string: "PONG\r\n")) }
            if line.hasPrefix("-ERR") { throw CoreError(.invalidConfiguration, "NATS refused: \(line)") }
        }
        throw CoreError(.invalidConfiguration, "NATS closed the connection")
    }

    /// Called once before Core serves: with no cursor yet, publishing starts at the newest event, so an
    /// install that turns NATS on later does not replay its whole history; every event after that is sent.
    public func prepareCursor() async throws {
        if try await hub.store.eventCursor(Self.cursorName) == 0 {
            _ = try await hub.store.advanceEventCursor(Self.cursorName, from: 0, to: try await hub.store.lastEventID())
        }
    }

    static func message(_ event: EventRecord) -> String {
        #"{"id":\#(event.id ?? 0),"type":"\#(event.type)","at":"\#(Timestamp.text(event.at))","subject":"\#(event.subject)","data":\#(event.payload)}"#
    }
}

/// Splits the NATS stream into CRLF-terminated control lines (the publisher never subscribes, so no payloads arrive).
struct NATSLineDecoder: ByteToMessageDecoder {
    typealias InboundOut = String

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let offset = buffer.withUnsafeReadableBytes({ $0.firstIndex(of: UInt8(ascii: "\n")) }) else {
            return .needMoreData
        }
        guard let bytes = buffer.readBytes(length: offset + 1) else { return .needMoreData }
        // Byte-wise: "\r\n" is one Character in Swift, so string suffix checks would miss it.
        let line = bytes.dropLast().last == 13 ? bytes.dropLast(2) : bytes.dropLast()
        context.fireChannelRead(wrapInboundOut(String(decoding: line, as: UTF8.self)))
        return .continue
    }
}
