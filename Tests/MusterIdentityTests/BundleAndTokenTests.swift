import Foundation
import MusterIdentity
import Testing
import X509

@Suite("trust bundles and pins")
struct BundleTests {
    @Test("PEM and SPIFFE JSON round-trip several roots")
    func roundTrip() throws {
        let roots = try (0..<2).map { _ in try CertificateAuthority.createRoot(trustDomain: "example.org").certificate }
        let bundle = TrustBundle(trustDomain: "example.org", roots: roots, sequence: 7, refreshHint: 60)
        #expect(try TrustBundle(trustDomain: "example.org", pem: try bundle.pem()).roots == roots)
        let parsed = try TrustBundle(trustDomain: "example.org", spiffeJSON: try bundle.spiffeJSON())
        #expect(parsed.roots == roots)
        #expect(parsed.sequence == 7 && parsed.refreshHint == 60)
    }

    @Test("the SPIFFE JSON follows the spec: use x509-svid, one x5c, no kid")
    func jsonShape() throws {
        let root = try CertificateAuthority.createRoot(trustDomain: "example.org").certificate
        let json = try TrustBundle(trustDomain: "example.org", roots: [root]).spiffeJSON()
        let object = try #require(try JSONSerialization.jsonObject(with: json) as? [String: Any])
        let key = try #require((object["keys"] as? [[String: Any]])?.first)
        #expect(key["use"] as? String == "x509-svid")
        #expect((key["x5c"] as? [String])?.count == 1)
        #expect(key["kid"] == nil)
        #expect(key["kty"] as? String == "EC" && key["crv"] as? String == "P-256")
    }

    @Test("unknown entries are ignored, only the first x5c counts, an empty key set trusts nothing")
    func parsingRules() async throws {
        let root = try CertificateAuthority.createRoot(trustDomain: "example.org").certificate
        let other = try CertificateAuthority.createRoot(trustDomain: "example.org").certificate
        let der = { (c: Certificate) in Data(try c.serializeAsPEM().derBytes).base64EncodedString() }
        let json = """
            {"keys":[{"use":"jwt-svid","kty":"EC","kid":"k1","crv":"P-256","x":"AA","y":"AA"},
                     {"use":"x509-svid","kty":"EC","x5c":["\(try der(root))","\(try der(other))"]},
                     {"use":"something-new"}],
             "spiffe_sequence":3}
            """
        let bundle = try TrustBundle(trustDomain: "example.org", spiffeJSON: Data(json.utf8))
        #expect(bundle.roots == [root])
        let empty = try TrustBundle(trustDomain: "example.org", spiffeJSON: Data(#"{"keys":[]}"#.utf8))
        #expect(empty.roots.isEmpty)
        let verifier = SVIDVerifier(trustDomain: "example.org", roots: empty.roots)
        let leaf = try TestAuthority().leaf("spiffe://example.org/x")
        await #expect(throws: IdentityError(.chainInvalid, "")) { try await verifier.verify(chain: [leaf]) }
    }

    @Test("malformed bundles give specific errors")
    func malformed() {
        #expect(throws: IdentityError(.bundleMalformed, "")) {
            try TrustBundle(trustDomain: "t", spiffeJSON: Data("[]".utf8))
        }
        #expect(throws: IdentityError(.bundleMalformed, "")) {
            try TrustBundle(trustDomain: "t", spiffeJSON: Data(#"{"nokeys":1}"#.utf8))
        }
        #expect(throws: IdentityError(.bundleMalformed, "")) {
            try TrustBundle(trustDomain: "t", spiffeJSON: Data(#"{"keys":[{"use":"x509-svid"}]}"#.utf8))
        }
        #expect(throws: IdentityError(.certificateMalformed, "")) {
            try TrustBundle(trustDomain: "t", spiffeJSON: Data(#"{"keys":[{"use":"x509-svid","x5c":["AAAA"]}]}"#.utf8))
        }
        #expect(throws: IdentityError(.bundleMalformed, "")) {
            try TrustBundle(trustDomain: "t", pem: "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
        }
    }

    @Test("CA pins are sha256 of the SubjectPublicKeyInfo, as openssl computes it")
    func pin() throws {
        let root = try CertificateAuthority.createRoot(trustDomain: "example.org").certificate
        let pem = try root.serializeAsPEM().pemString
        let shell = Process()
        shell.executableURL = URL(filePath: "/bin/sh")
        shell.arguments = [
            "-c", "openssl x509 -pubkey -noout | openssl pkey -pubin -outform DER | sha256sum | cut -d' ' -f1",
        ]
        let input = Pipe()
        let output = Pipe()
        shell.standardInput = input
        shell.standardOutput = output
        try shell.run()
        input.fileHandleForWriting.write(Data(pem.utf8))
        try input.fileHandleForWriting.close()
        shell.waitUntilExit()
        let hex = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).trimmingCharacters(
            in: .whitespacesAndNewlines)
        #expect(CAPin.of(root) == "sha256:" + hex)
        #expect(try CAPin.parse("SHA256:" + hex.uppercased()) == "sha256:" + hex)
        #expect(throws: IdentityError(.bundleMalformed, "")) { try CAPin.parse("sha1:abcd") }
    }
}

@Suite("join tokens")
struct JoinTokenTests {
    @Test("tokens carry 192 random bits, a recognisable prefix and a checksum")
    func shape() throws {
        let tokens = (0..<1000).map { _ in JoinToken.generate().secret }
        #expect(Set(tokens).count == 1000)
        for token in tokens.prefix(20) {
            #expect(token.hasPrefix("mjt_") && token.count == 42)
            #expect(try JoinToken(parsing: token).secret == token)
        }
    }

    @Test("a mistyped, truncated or foreign token is refused by its form")
    func parsing() throws {
        let token = JoinToken.generate().secret
        var typo = Array(token)
        typo[10] = typo[10] == "A" ? "B" : "A"
        for bad in [
            String(typo), String(token.dropLast()), "ghp_" + token.dropFirst(4), token + "x",
            "mjt_" + String(repeating: "!", count: 38), "",
        ] {
            #expect(throws: IdentityError(.tokenMalformed, ""), "\(bad)") { try JoinToken(parsing: bad) }
        }
    }

    @Test("only the hash is kept; matching compares hashes")
    func hashing() throws {
        let token = JoinToken.generate()
        let stored = token.hash
        #expect(stored.count == 32)
        #expect(token.matches(hash: stored))
        #expect(JoinToken.generate().matches(hash: stored) == false)
        #expect(token.matches(hash: Array(stored.dropLast())) == false)
    }

    @Test("the token never prints")
    func redacted() {
        let token = JoinToken.generate()
        var dumped = ""
        dump(token, to: &dumped)
        for text in ["\(token)", String(reflecting: token), dumped] {
            #expect(text.contains(token.secret) == false, "\(text)")
        }
    }

    @Test("TTL: 15 minutes by default, at most 24 hours")
    func ttl() throws {
        #expect(JoinToken.defaultTTL == 900)
        try JoinToken.validateTTL(86_400)
        #expect(throws: IdentityError(.badLifetime, "")) { try JoinToken.validateTTL(86_401) }
        #expect(throws: IdentityError(.badLifetime, "")) { try JoinToken.validateTTL(0) }
    }
}
