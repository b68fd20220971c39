import Crypto
import Foundation
import MusterIdentity
import SwiftASN1
import Testing
import X509

@Suite("CSR checks")
struct CSRTests {
    static func csr(key: P256.Signing.PrivateKey = .init(), extensions: Certificate.Extensions? = nil) throws -> [UInt8]
    {
        var attributes = CertificateSigningRequest.Attributes()
        if let extensions {
            attributes.insert(try CertificateSigningRequest.Attribute(ExtensionRequest(extensions: extensions)))
        }
        let request = try CertificateSigningRequest(
            version: .v1, subject: try DistinguishedName { CommonName("ignored") }, privateKey: .init(key),
            attributes: attributes, signatureAlgorithm: .ecdsaWithSHA256)
        var serializer = DER.Serializer()
        try serializer.serialize(request)
        return serializer.serializedBytes
    }

    /// A CSR made by openssl, for key types swift-certificates cannot create.
    static func opensslCSR(_ keyArguments: [String]) throws -> [UInt8] {
        let directory = FileManager.default.temporaryDirectory.appending(path: "csr-\(UUID())").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let process = Process()
        process.executableURL = URL(filePath: "/usr/bin/openssl")
        process.arguments =
            [
                "req", "-new", "-nodes", "-subj", "/CN=x", "-keyout", directory + "/k.pem", "-outform", "DER", "-out",
                directory + "/r.der",
            ] + keyArguments
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        return Array(try Data(contentsOf: URL(filePath: directory + "/r.der")))
    }

    @Test("a good P-256 CSR yields its public key, and only that")
    func good() throws {
        let key = P256.Signing.PrivateKey()
        let publicKey = try CSRCheck.publicKey(fromDER: try Self.csr(key: key))
        #expect(publicKey == Certificate.PublicKey(key.publicKey))
    }

    @Test("a tampered CSR fails its signature check")
    func badSignature() throws {
        var der = try Self.csr()
        // Flip a bit inside the subject's common name ("ignored"), leaving the DER well-formed.
        let index = try #require(der.firstIndex(of: UInt8(ascii: "g")))
        der[index] ^= 0x01
        #expect(throws: IdentityError(.csrBadSignature, "")) { try CSRCheck.publicKey(fromDER: der) }
    }

    @Test("RSA under 2048 bits is refused as weak; RSA 2048 and P-384 are refused as not P-256")
    func rsa() throws {
        #expect(throws: IdentityError(.csrWeakKey, "")) {
            try CSRCheck.publicKey(fromDER: try Self.opensslCSR(["-newkey", "rsa:1024"]))
        }
        #expect(throws: IdentityError(.csrUnsupportedKey, "")) {
            try CSRCheck.publicKey(fromDER: try Self.opensslCSR(["-newkey", "rsa:2048"]))
        }
        #expect(throws: IdentityError(.csrUnsupportedKey, "")) {
            try CSRCheck.publicKey(
                fromDER: try Self.opensslCSR(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384"]))
        }
    }

    @Test("an Ed25519 key is refused as unsupported")
    func ed25519() throws {
        #expect(throws: IdentityError(.csrUnsupportedKey, "")) {
            try CSRCheck.publicKey(fromDER: try Self.opensslCSR(["-newkey", "ed25519"]))
        }
    }

    @Test("an oversized CSR is refused before parsing")
    func tooLarge() throws {
        #expect(throws: IdentityError(.csrTooLarge, "")) {
            try CSRCheck.publicKey(fromDER: [UInt8](repeating: 0x30, count: 9000))
        }
    }

    @Test("a CSR requesting many extensions is refused")
    func tooManyExtensions() throws {
        // swift-certificates cannot even build such a CSR, so openssl makes it.
        let extensions = (0..<40).flatMap { ["-addext", "1.3.6.1.4.1.99999.\($0)=ASN1:NULL"] }
        let der = try Self.opensslCSR(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"] + extensions)
        #expect(throws: IdentityError(.csrTooManyExtensions, "")) { try CSRCheck.publicKey(fromDER: der) }
    }

    @Test("a leaf CSR asking to be a CA is refused; a downstream CA's CSR may")
    func requestsCA() throws {
        let extensions = try Certificate.Extensions {
            Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil))
        }
        let der = try Self.csr(extensions: extensions)
        #expect(throws: IdentityError(.csrRequestsCA, "")) { try CSRCheck.publicKey(fromDER: der) }
        _ = try CSRCheck.publicKey(fromDER: der, purpose: .certificateAuthority)
    }

    @Test("garbage and truncated input are malformed, not crashes")
    func malformed() throws {
        let good = try Self.csr()
        for bad in [[], [0x30], Array(good.prefix(good.count / 2)), [UInt8](repeating: 0xFF, count: 300)] {
            #expect(throws: IdentityError(.csrMalformed, "")) { try CSRCheck.publicKey(fromDER: bad) }
        }
        #expect(throws: IdentityError(.csrMalformed, "")) {
            try CSRCheck.publicKey(fromPEM: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
        }
    }

    @Test("issued identity comes from the record, never from the CSR's subject or SANs")
    func identityFromRecord() throws {
        let sans = try Certificate.Extensions {
            SubjectAlternativeNames([.uniformResourceIdentifier("spiffe://example.org/muster/core")])
        }
        let key = try CSRCheck.publicKey(fromDER: try Self.csr(extensions: sans))
        let root = try CertificateAuthority.createRoot(trustDomain: "example.org")
        let leaf = try root.issueLeaf(
            spiffeID: try MusterIDs.agent(trustDomain: "example.org", poller: "p1", name: "a1"), publicKey: key)
        #expect(try SVIDVerifier.checkLeaf(leaf).description == "spiffe://example.org/muster/poller/p1/agent/a1")
    }
}
