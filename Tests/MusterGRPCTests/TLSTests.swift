import Foundation
import MusterEcho
import MusterGRPC
import MusterIdentity
import MusterProto
import Testing

@Suite("TLS and SPIFFE peers")
struct TLSTests {
    @Test("a client certificate from another CA is refused at the handshake")
    func foreignCA() async throws {
        let fixture = try Fixture()
        let stranger = try TestPKI(trustDomain: "other.example")
        let channel = try fixture.channel(identity: try stranger.svid("/muster/poller/edge-1"))
        let error = await rpcError {
            _ = try await channel.unary(
                Echo.unary, echo("x"), as: EchoResponse.self, options: .init(timeout: .seconds(5)))
        }
        #expect(error?.code == .unavailable)
        await fixture.stop()
    }

    @Test("a client without a certificate cannot connect when one is required")
    func missingClientCertificate() async throws {
        let fixture = try Fixture(clientCertificates: .required)
        let channel = try fixture.channel(as: nil)
        let error = await rpcError {
            _ = try await channel.unary(
                Echo.unary, echo("x"), as: EchoResponse.self, options: .init(timeout: .seconds(5)))
        }
        #expect(error?.code == .unavailable)
        await fixture.stop()
    }

    @Test("certificates with no or two URI SANs are refused with UNAUTHENTICATED")
    func notAnSVID() async throws {
        let fixture = try Fixture(services: [EchoService(policy: .trustDomain("test.muster.local"))])
        for uris in [
            [], ["spiffe://test.muster.local/a", "spiffe://test.muster.local/b"], ["https://test.muster.local/a"],
        ] {
            let channel = try fixture.channel(identity: try fixture.pki.leaf(uris: uris))
            let error = await rpcError { _ = try await channel.unary(Echo.unary, echo("x"), as: EchoResponse.self) }
            #expect(error?.code == .unauthenticated, "URIs \(uris)")
        }
        await fixture.stop()
    }

    @Test("an SVID of another trust domain or outside the allowed path is PERMISSION_DENIED")
    func policy() async throws {
        let fixture = try Fixture(services: [
            EchoService(policy: .within(try SPIFFEID(parsing: "spiffe://test.muster.local/muster/poller")))
        ])
        let foreign = try fixture.channel(
            identity: try fixture.pki.leaf(uris: ["spiffe://evil.example/muster/poller/x"]))
        #expect(
            await rpcError { _ = try await foreign.unary(Echo.unary, echo("x"), as: EchoResponse.self) }?.code
                == .permissionDenied)
        let outside = try fixture.channel(as: "/muster/pollerx/edge-1")
        #expect(
            await rpcError { _ = try await outside.unary(Echo.unary, echo("x"), as: EchoResponse.self) }?.code
                == .permissionDenied)
        let inside = try fixture.channel(as: "/muster/poller/edge-1/agent/a1")
        let response = try await inside.unary(Echo.unary, echo("x"), as: EchoResponse.self)
        #expect(response.peerSpiffeID == "spiffe://test.muster.local/muster/poller/edge-1/agent/a1")
        await fixture.stop()
    }

    @Test("optional client certificates: anonymous callers reach open methods only")
    func optionalClientCertificates() async throws {
        struct Mixed: GRPCService {
            func register(with router: inout GRPCRouter) {
                EchoService().register(with: &router)
                router.unary(
                    "/muster.testing.v1.Echo/Bidi", EchoRequest.self, policy: .trustDomain("test.muster.local")
                ) { _, _ in EchoResponse() }
            }
        }
        let fixture = try Fixture(clientCertificates: .optional, services: [Mixed()])
        let anonymous = try fixture.channel(as: nil)
        let open = try await anonymous.unary(Echo.unary, echo("hi"), as: EchoResponse.self)
        #expect(open.peerSpiffeID == "")
        let closed = await rpcError { _ = try await anonymous.unary(Echo.bidi, echo("hi"), as: EchoResponse.self) }
        #expect(closed?.code == .unauthenticated)
        let known = try fixture.channel(as: "/muster/poller/p1")
        _ = try await known.unary(Echo.bidi, echo("hi"), as: EchoResponse.self)
        await fixture.stop()
    }

    @Test("the client checks the server's SPIFFE ID, not its hostname")
    func serverIdentity() async throws {
        let fixture = try Fixture()
        let wrong = try fixture.channel(expect: .exactly(fixture.pki.id("/muster/poller/impostor")))
        let error = await rpcError {
            _ = try await wrong.unary(
                Echo.unary, echo("x"), as: EchoResponse.self, options: .init(timeout: .seconds(5)))
        }
        #expect(error?.code == .unavailable)
        #expect(error?.message.contains("server identity rejected") == true)
        await fixture.stop()
    }

    @Test("first contact by CA pin: the right pin connects, a wrong one never does")
    func pinnedFirstContact() async throws {
        let fixture = try Fixture()
        fixture.certificates.update(
            identity: try {
                let identity = try fixture.pki.svid("/muster/core", serving: true)
                let root = try PEM.encode([fixture.pki.authority.certificate])
                return CertifiedKey(
                    certificateChainPEM: identity.certificateChainPEM + root, privateKeyPEM: identity.privateKeyPEM)
            }())
        let pinned = try fixture.channel(trust: .pin(fixture.pki.pin))
        _ = try await pinned.unary(Echo.unary, echo("x"), as: EchoResponse.self)
        let other = try TestPKI(trustDomain: "other.example")
        let wrong = try fixture.channel(trust: .pin(other.pin))
        let error = await rpcError {
            _ = try await wrong.unary(
                Echo.unary, echo("x"), as: EchoResponse.self, options: .init(timeout: .seconds(5)))
        }
        #expect(error?.code == .unavailable)
        #expect(error?.message.contains("CA pin") == true)
        await fixture.stop()
    }

    @Test("a reloaded certificate serves new connections while an open call finishes on the old one")
    func reload() async throws {
        let fixture = try Fixture()
        let before = try fixture.channel()
        // Connected (handshaken with the first certificate) before anything else: on a loaded machine a first call's
        // handshake can take longer than the wait below, and would then meet the rotated certificate.
        _ = try await before.unary(Echo.unary, echo("connect"), as: EchoResponse.self)
        // A call in flight across the reload, on that connection.
        let inFlight = Task { try await before.unary(Echo.unary, echo("old", delayMs: 600), as: EchoResponse.self) }
        try await Task.sleep(for: .milliseconds(150))
        fixture.certificates.update(identity: try fixture.pki.svid("/muster/core-rotated", serving: true))
        let after = try fixture.channel(expect: .exactly(fixture.pki.id("/muster/core-rotated")))
        _ = try await after.unary(Echo.unary, echo("new"), as: EchoResponse.self)
        let stale = try fixture.channel(expect: .exactly(fixture.serverID))
        let error = await rpcError {
            _ = try await stale.unary(
                Echo.unary, echo("x"), as: EchoResponse.self, options: .init(timeout: .seconds(5)))
        }
        #expect(error?.code == .unavailable)
        let old = try await inFlight.value
        #expect(String(decoding: old.payload, as: UTF8.self) == "old")
        await fixture.stop()
    }

    @Test("Health: Check answers SERVING; Watch sees a change")
    func health() async throws {
        let health = HealthService()
        let fixture = try Fixture(services: [health])
        let channel = try fixture.channel()
        typealias Request = MusterProtoHealth.Request
        let check = try await channel.unary(
            "/grpc.health.v1.Health/Check", Request(), as: MusterProtoHealth.Response.self)
        #expect(check.status == .serving)
        let unknown = await rpcError {
            _ = try await channel.unary(
                "/grpc.health.v1.Health/Check", Request.with { $0.service = "nope" },
                as: MusterProtoHealth.Response.self)
        }
        #expect(unknown?.code == .notFound)
        let seen = try await channel.serverStreaming(
            "/grpc.health.v1.Health/Watch", Request(), as: MusterProtoHealth.Response.self
        ) { stream in
            var seen: [MusterProtoHealth.Response.ServingStatus] = []
            for try await response in stream {
                seen.append(response.status)
                if seen.count == 1 { health.setStatus(.notServing) }
                if seen.count == 2 { break }
            }
            return seen
        }
        #expect(seen == [.serving, .notServing])
        await fixture.stop()
    }
}

enum MusterProtoHealth {
    typealias Request = Grpc_Health_V1_HealthCheckRequest
    typealias Response = Grpc_Health_V1_HealthCheckResponse
}
