import Crypto
import Foundation
import MusterArchive
import MusterIdentity
import Testing

@testable import MusterCore
@testable import MusterStore

@Suite("sealed tokens, archives, rate limits")
struct SecretsAndArchiveTests {
    @Test("a sealed join token opens only with its key and for its own package")
    func sealing() throws {
        let sealer = TokenSealer(key: .init(size: .bits256))
        let token = JoinToken.generate()
        let sealed = try sealer.seal(token, packageID: "p1")
        #expect(!String(decoding: sealed, as: UTF8.self).contains(token.secret))
        #expect(try sealer.open(sealed, packageID: "p1").secret == token.secret)
        #expect(throws: CoreError(.secrets, "")) { try sealer.open(sealed, packageID: "p2") }
        #expect(throws: CoreError(.secrets, "")) {
            try TokenSealer(key: .init(size: .bits256)).open(sealed, packageID: "p1")
        }
    }

    @Test("the package archive opens with system tar: the six files, join-token 0600 holding the token")
    func archive() async throws {
        let h = try Harness(store: try await Backend.sqlite.makeStore())
        try await h.poller()
        let agent = try await h.agent("a1")
        let (name, bytes) = try await h.packages.download(id: agent.id, by: h.admin)
        #expect(name == "muster-agent-a1.tar.gz")
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("muster-tar-\(UUID().uuidString)")
            .path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try Data(bytes).write(to: URL(fileURLWithPath: directory + "/p.tar.gz"))
        let listing = try run("/bin/tar", ["-tvzf", directory + "/p.tar.gz"])
        for file in [
            "manifest.json", "join-token", "bundle.pem", "bundle.spiffe.json", "muster-agent.env", "README.txt",
        ] {
            #expect(listing.contains(file))
        }
        #expect(listing.split(separator: "\n").first { $0.hasSuffix("join-token") }?.hasPrefix("-rw-------") == true)
        _ = try run("/bin/tar", ["-xzf", directory + "/p.tar.gz", "-C", directory])
        let token = try String(contentsOfFile: directory + "/join-token", encoding: .utf8).trimmingCharacters(
            in: .whitespacesAndNewlines)
        let record = try #require(try await h.store.package(id: agent.id))
        #expect(PackageService.hex(try JoinToken(parsing: token).hash) == record.tokenHash)
        #expect(record.tokenCiphertext == nil)
        let manifest =
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: directory + "/manifest.json")))
            as? [String: Any]
        #expect(manifest?["spiffe_id"] as? String == agent.spiffeID)
        #expect(manifest?["ca_pin"] as? String == h.identity.caPin)
        #expect(manifest?["trust_domain"] as? String == "test.example")
        let pem = try String(contentsOfFile: directory + "/bundle.pem", encoding: .utf8)
        #expect(try TrustBundle(trustDomain: "test.example", pem: pem).roots == h.identity.bundle.roots)
        await h.store.shutdown()
    }

    @Test("the rate limiter allows the burst, then answers with the wait")
    func rateLimit() {
        let limiter = RateLimiter(perMinute: 10)
        for _ in 0..<10 { #expect(limiter.take("op", now: 1000) == nil) }
        #expect(limiter.take("op", now: 1000) == 6)
        #expect(limiter.take("other", now: 1000) == nil)
        #expect(limiter.take("op", now: 1006) == nil)
    }

    func run(_ program: String, _ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: program)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        return String(decoding: output, as: UTF8.self)
    }
}
