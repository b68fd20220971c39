import Foundation
import MusterGRPC
import MusterIdentity
import Testing

@testable import MusterGRPC

@Suite("per-connection peer identities")
struct PeerTableTests {
    @Test("a connection's chain is verified once, and each connection's calls carry that connection's identity")
    func oncePerConnection() async throws {
        let fixture = try Fixture()
        let first = try fixture.channel(as: "/muster/poller/edge-1")
        let second = try fixture.channel(as: "/muster/poller/edge-2")
        for round in 0..<20 {
            for (channel, name) in [(first, "edge-1"), (second, "edge-2")] {
                let reply = try await channel.unary(Echo.unary, echo("\(round)"), as: EchoResponse.self)
                #expect(reply.peerSpiffeID == fixture.pki.id("/muster/poller/\(name)").description)
            }
        }
        #expect(fixture.server.peerVerifier.chainsVerified == 2)
        await fixture.stop()
    }

    @Test("a connection that closed lends its identity to no later connection")
    func closedConnectionsAreNotReused() async throws {
        let fixture = try Fixture()
        for index in 0..<15 {
            // Each channel is one connection, dropped before the next one opens.
            let channel = try fixture.channel(as: "/muster/poller/p\(index)")
            for _ in 0..<2 {
                let reply = try await channel.unary(Echo.unary, echo("x"), as: EchoResponse.self)
                #expect(reply.peerSpiffeID == fixture.pki.id("/muster/poller/p\(index)").description)
            }
        }
        #expect(fixture.server.peerVerifier.chainsVerified == 15)
        await fixture.stop()
    }

    @Test("connections idle past the eviction interval leave the table, and a live one is verified again")
    func idleConnectionsAreSwept() async throws {
        let fixture = try Fixture()
        for index in 0..<5 {
            let channel = try fixture.channel(as: "/muster/poller/gone-\(index)")
            _ = try await channel.unary(Echo.unary, echo("x"), as: EchoResponse.self)
        }
        let live = try fixture.channel(as: "/muster/poller/live")
        _ = try await live.unary(Echo.unary, echo("x"), as: EchoResponse.self)
        let verifier = fixture.server.peerVerifier
        #expect(verifier.connectionsHeld == 6)
        verifier.sweep(now: Date().addingTimeInterval(PeerVerifier.idleEviction / 2))
        #expect(verifier.connectionsHeld == 6)
        verifier.sweep(now: Date().addingTimeInterval(PeerVerifier.idleEviction + 1))
        #expect(verifier.connectionsHeld == 0)
        let reply = try await live.unary(Echo.unary, echo("again"), as: EchoResponse.self)
        #expect(reply.peerSpiffeID == fixture.pki.id("/muster/poller/live").description)
        #expect(verifier.chainsVerified == 7)
        #expect(verifier.connectionsHeld == 1)
        await fixture.stop()
    }
}
