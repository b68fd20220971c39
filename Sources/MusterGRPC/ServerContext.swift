import Foundation
import MusterConcurrency
import MusterIdentity

/// What a handler knows about its call: method, request metadata, deadline, peer; and where it sets response metadata.
public final class ServerContext: Sendable {
    public let method: String
    public let requestMetadata: Metadata
    /// When the client stops waiting; nil when it set no deadline.
    public let deadline: Date?
    private let call: ServerCall
    private let peerResult: Result<PeerIdentity?, RPCError>
    private let response = LockedValue<(initial: Metadata, trailing: Metadata)>(([:], [:]))

    /// The caller's process credentials, for a call that came through a Unix socket the server accepts on.
    public let peerCredentials: PeerCredentials?

    init(call: ServerCall, peer: Result<PeerIdentity, RPCError>?, credentials: PeerCredentials? = nil) {
        peerCredentials = credentials
        method = call.method
        requestMetadata = call.requestMetadata
        deadline = call.deadline
        self.call = call
        peerResult = peer.map { $0.map(Optional.some) } ?? .success(nil)
    }

    /// The caller's verified SPIFFE identity; nil when it presented no certificate.
    /// Throws UNAUTHENTICATED when its certificate is not a usable X.509-SVID.
    public func peer() throws(RPCError) -> PeerIdentity? { try peerResult.get() }

    /// The transport peer, e.g. `ipv4:10.0.0.5:41234` (asked of gRPC core when read, not on every call).
    public var peerAddress: String { call.peerAddress }

    /// The source IP address of the caller, without port, e.g. `10.0.0.5`.
    public var peerIP: String { PeerAddress.ip(from: peerAddress) }

    /// Adds a header sent with the first response message.
    public func addResponseHeader(_ key: String, _ value: String) {
        response.withLock { $0.initial.add(key, value) }
    }

    /// Adds a trailer sent with the final status.
    public func addResponseTrailer(_ key: String, _ value: String) {
        response.withLock { $0.trailing.add(key, value) }
    }

    var responseHeaders: Metadata { response.withLock { $0.initial } }
    var responseTrailers: Metadata { response.withLock { $0.trailing } }
}

enum PeerAddress {
    /// `ipv4:1.2.3.4:5` → `1.2.3.4`; `ipv6:[::1]:5` → `::1`.
    static func ip(from address: String) -> String {
        var rest = Substring(address)
        if let colon = rest.firstIndex(of: ":"), ["ipv4", "ipv6"].contains(rest[..<colon]) {
            rest = rest[rest.index(after: colon)...]
        }
        if rest.hasPrefix("["), let close = rest.firstIndex(of: "]") {
            return String(rest[rest.index(after: rest.startIndex)..<close])
        }
        if let colon = rest.lastIndex(of: ":") { return String(rest[..<colon]) }
        return String(rest)
    }
}
