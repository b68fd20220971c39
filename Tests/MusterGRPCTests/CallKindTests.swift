import Foundation
import MusterGRPC
import Testing

@Suite("call kinds over mTLS")
struct CallKindTests {
    @Test("unary: payload, peer SPIFFE ID and metadata both ways")
    func unary() async throws {
        let fixture = try Fixture()
        let channel = try fixture.channel(as: "/muster/poller/edge-1")
        let response = try await channel.unaryResponse(
            Echo.unary, echo("ping"), as: EchoResponse.self, options: .init(metadata: ["x-echo": "meta-value"]))
        #expect(String(decoding: response.message.payload, as: UTF8.self) == "ping")
        #expect(response.message.peerSpiffeID == "spiffe://test.muster.local/muster/poller/edge-1")
        #expect(response.initialMetadata["x-echo"] == "meta-value")
        #expect(response.trailingMetadata["x-echo-trailer"] == "meta-value")
        await fixture.stop()
    }

    @Test("server streaming delivers every response in order")
    func serverStreaming() async throws {
        let fixture = try Fixture()
        let channel = try fixture.channel()
        let payloads = try await channel.serverStreaming(
            Echo.serverStream, echo("s", repeat: 25), as: EchoResponse.self
        ) { stream in
            var payloads: [String] = []
            for try await response in stream { payloads.append(String(decoding: response.payload, as: UTF8.self)) }
            return payloads
        }
        #expect(payloads == Array(repeating: "s", count: 25))
        await fixture.stop()
    }

    @Test("client streaming counts every request")
    func clientStreaming() async throws {
        let fixture = try Fixture()
        let channel = try fixture.channel()
        let response = try await channel.clientStreaming(Echo.clientStream, as: EchoResponse.self) {
            (writer: ClientRequestWriter<EchoRequest>) in
            for index in 0..<40 { try await writer.write(echo("c\(index)")) }
        }
        #expect(response.count == 40)
        #expect(String(decoding: response.payload, as: UTF8.self) == "c39")
        await fixture.stop()
    }

    @Test("bidirectional streaming answers each request as it comes")
    func bidirectional() async throws {
        let fixture = try Fixture()
        let channel = try fixture.channel()
        let answers = try await channel.bidirectional(Echo.bidi, as: EchoResponse.self) {
            (writer: ClientRequestWriter<EchoRequest>, responses) in
            var iterator = responses.makeAsyncIterator()
            var answers: [String] = []
            for index in 0..<10 {
                try await writer.write(echo("b\(index)"))
                let answer = try await iterator.next()
                answers.append(answer.map { String(decoding: $0.payload, as: UTF8.self) } ?? "<none>")
            }
            try await writer.finish()
            #expect(try await iterator.next() == nil)
            return answers
        }
        #expect(answers == (0..<10).map { "b\($0)" })
        await fixture.stop()
    }

    @Test("status code and message travel from handler to caller")
    func statusRoundTrip() async throws {
        let fixture = try Fixture()
        let channel = try fixture.channel()
        let error = await rpcError {
            _ = try await channel.unary(Echo.unary, echo("x", failWith: 9, message: "not now"), as: EchoResponse.self)
        }
        #expect(error?.code == .failedPrecondition)
        #expect(error?.message == "not now")
        let streamError = await rpcError {
            _ = try await channel.serverStreaming(
                Echo.serverStream, echo("x", failWith: 5, message: "gone"), as: EchoResponse.self
            ) { stream in
                for try await _ in stream {}
            }
        }
        #expect(streamError?.code == .notFound)
        #expect(streamError?.message == "gone")
        await fixture.stop()
    }

    @Test("4 MiB messages go both ways")
    func largeMessages() async throws {
        let fixture = try Fixture()
        let channel = try fixture.channel()
        let payload = Data((0..<(4 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        let response = try await channel.unary(
            Echo.unary, EchoRequest.with { $0.payload = payload }, as: EchoResponse.self)
        #expect(response.payload == payload)
        await fixture.stop()
    }
}
