import Crypto
import Foundation
import Testing
import X509

@testable import MusterIdentity

@Suite("files on disk", .serialized)
struct SecureFileTests {
    static func mode(_ path: String) throws -> Int {
        (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber)?.intValue ?? -1
    }

    @Test("the CA key is 0600 in a 0700 directory even under umask 000")
    func permissionsUnderOpenUmask() throws {
        let directory = FileManager.default.temporaryDirectory.appending(path: "ca-\(UUID())/ca").path
        let previous = umask(0)
        defer { umask(previous) }
        _ = try RootCAStore(directory: directory).loadOrCreate(trustDomain: "example.org")
        #expect(try Self.mode(directory) == 0o700)
        #expect(try Self.mode(directory + "/root.key") == 0o600)
        #expect(try Self.mode(directory + "/bundle.pem") == 0o644)
    }

    @Test("a restart loads the same CA; another trust domain is refused")
    func reload() throws {
        let directory = FileManager.default.temporaryDirectory.appending(path: "ca-\(UUID())").path
        let first = try RootCAStore(directory: directory).loadOrCreate(trustDomain: "example.org")
        let second = try RootCAStore(directory: directory).loadOrCreate(trustDomain: "example.org")
        #expect(first.authority.certificate == second.authority.certificate)
        #expect(throws: IdentityError(.storage, "")) {
            try RootCAStore(directory: directory).loadOrCreate(trustDomain: "other.org")
        }
        // A name that merely starts with the stored one is another trust domain too.
        #expect(throws: IdentityError(.storage, "")) {
            try RootCAStore(directory: directory).loadOrCreate(trustDomain: "example.or")
        }
    }

    @Test("a write that dies before its rename leaves the old file whole and no stray temporary")
    func interruptedWrite() throws {
        // The crash is simulated by failing at the point between fsync and rename (a real kill there cannot be timed).
        let directory = FileManager.default.temporaryDirectory.appending(path: "w-\(UUID())").path
        try SecureFile.write("old contents", to: directory + "/f", mode: 0o600)
        struct Crash: Error {}
        #expect(throws: SecureFile.WriteError.self) {
            try SecureFile.write(
                Array(repeating: UInt8(ascii: "n"), count: 1 << 20), to: directory + "/f", mode: 0o600,
                beforeRename: { throw Crash() })
        }
        #expect(try String(contentsOfFile: directory + "/f", encoding: .utf8) == "old contents")
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory) == ["f"])
    }
}

@Suite("outside judges: openssl and py-spiffe")
struct OutsideJudgeTests {
    static func run(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(filePath: "/usr/bin/env")
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, output)
    }

    /// A root, a poller (SVID + downstream CA) and an agent SVID from that CA, written as files.
    static func issueAll() throws -> String {
        let directory = FileManager.default.temporaryDirectory.appending(path: "judge-\(UUID())").path
        let authority = try TestAuthority()
        let downstream = try authority.downstream(poller: "edge-1")
        let pollerKey = P256.Signing.PrivateKey()
        let agentKey = P256.Signing.PrivateKey()
        let poller = try authority.root.issueLeaf(
            spiffeID: try MusterIDs.poller(trustDomain: "example.org", name: "edge-1"),
            publicKey: .init(pollerKey.publicKey),
            dnsNames: ["poller.example.org"], ipAddresses: ["10.0.0.1"])
        let agent = try downstream.issueLeaf(
            spiffeID: try MusterIDs.agent(trustDomain: "example.org", poller: "edge-1", name: "a1"),
            publicKey: .init(agentKey.publicKey))
        let bundle = TrustBundle(trustDomain: "example.org", roots: [authority.root.certificate])
        try SecureFile.write(try bundle.pem(), to: directory + "/bundle.pem", mode: 0o644)
        try SecureFile.write(Array(try bundle.spiffeJSON()), to: directory + "/bundle.json", mode: 0o644)
        try SecureFile.write(try PEM.encode([poller]), to: directory + "/poller.pem", mode: 0o644)
        try SecureFile.write(try PEM.encode(Certificate.PrivateKey(pollerKey)), to: directory + "/poller.key")
        try SecureFile.write(try PEM.encode([downstream.certificate]), to: directory + "/poller-ca.pem", mode: 0o644)
        try SecureFile.write(
            try PEM.encode([agent, downstream.certificate]), to: directory + "/agent.pem", mode: 0o644)
        try SecureFile.write(try PEM.encode(Certificate.PrivateKey(agentKey)), to: directory + "/agent.key")
        return directory
    }

    @Test("openssl verify accepts every issued chain against the bundle, and rejects a foreign root")
    func opensslVerify() throws {
        let d = try Self.issueAll()
        let poller = try Self.run([
            "openssl", "verify", "-x509_strict", "-purpose", "sslclient", "-CAfile", d + "/bundle.pem",
            d + "/poller.pem",
        ])
        #expect(poller.status == 0, "\(poller.output)")
        let agent = try Self.run([
            "openssl", "verify", "-x509_strict", "-purpose", "sslserver", "-CAfile", d + "/bundle.pem",
            "-untrusted", d + "/poller-ca.pem", d + "/agent.pem",
        ])
        #expect(agent.status == 0, "\(agent.output)")
        let stranger = try Self.issueAll()
        let foreign = try Self.run([
            "openssl", "verify", "-CAfile", stranger + "/bundle.pem", "-untrusted", d + "/poller-ca.pem",
            d + "/agent.pem",
        ])
        #expect(foreign.status != 0)
    }

    @Test("py-spiffe parses the SVIDs and bundle; pyca/cryptography reads the SPIFFE bundle JSON")
    func pySpiffe() throws {
        let d = try Self.issueAll()
        let script = URL(filePath: #filePath).deletingLastPathComponent().appending(path: "judge_pyspiffe.py").path
        let result = try Self.run(["python3", script, d])
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("agent spiffe://example.org/muster/poller/edge-1/agent/a1"))
        #expect(result.output.contains("poller spiffe://example.org/muster/poller/edge-1"))
    }
}
