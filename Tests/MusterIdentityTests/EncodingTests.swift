import Crypto
import Foundation
import MusterIdentity
import SwiftASN1
import Testing
import X509

@Suite("PEM, random bytes and serial numbers")
struct EncodingTests {
    @Test("Muster's PEM writer gives exactly the text swift-certificates writes, block after block")
    func pemMatchesTheLibrary() throws {
        let root = try CertificateAuthority.createRoot(trustDomain: "example.org")
        let leaf = try root.issueLeaf(
            spiffeID: try SPIFFEID(parsing: "spiffe://example.org/muster/poller/p1"),
            publicKey: .init(P256.Signing.PrivateKey().publicKey), dnsNames: ["poller.example.org"])
        let expected = try [leaf, root.certificate].map { try $0.serializeAsPEM().pemString + "\n" }.joined()
        let written = try PEM.encode([leaf, root.certificate])
        #expect(written == expected)
        #expect(try PEMDocument.parseMultiple(pemString: written).map(\.derBytes).count == 2)
    }

    @Test("random bytes come in the length asked for, and two draws differ")
    func randomBytes() {
        for count in [0, 1, 7, 8, 9, 20, 32, 33] {
            #expect(ByteEncoding.randomBytes(count).count == count)
        }
        #expect(ByteEncoding.randomBytes(32) != ByteEncoding.randomBytes(32))
    }

    @Test("base64url is Foundation's base64 in the URL-safe alphabet, unpadded, and decodes back, at every length")
    func base64URL() {
        for count in 0...40 {
            let bytes = ByteEncoding.randomBytes(count) + (count > 2 ? [0xfb, 0xff] : [])
            let expected = Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-")
                .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
            let encoded = ByteEncoding.base64URL(bytes)
            #expect(encoded == expected)
            #expect(ByteEncoding.bytes(base64URL: encoded) == Data(bytes))
        }
        #expect(ByteEncoding.base64URL([0xfb, 0xff, 0xbf]) == "-_-_")
    }

    @Test("a serial's text is its octets in lowercase hex, joined by colons")
    func serialText() {
        #expect(MusterIdentity.SerialNumber.text(Certificate.SerialNumber(bytes: [0x0a, 0xff, 0x10])) == "0a:ff:10")
        #expect(MusterIdentity.SerialNumber.text(Certificate.SerialNumber(bytes: [0x7f])) == "7f")
        let serial = MusterIdentity.SerialNumber.random()
        #expect(
            MusterIdentity.SerialNumber.text(serial).split(separator: ":").map(String.init)
                == serial.bytes.map { ByteEncoding.hex([$0]) })
    }

    @Test("serials are 20 octets, positive, and differ")
    func serials() {
        let serials = (0..<200).map { _ in MusterIdentity.SerialNumber.random() }
        for serial in serials {
            #expect(serial.bytes.count == 20)
            #expect(serial.bytes[0] >= 1 && serial.bytes[0] <= 0x7f)
        }
        #expect(Set(serials.map(\.bytes)).count == serials.count)
    }

    @Test("a leaf's key identifier is the SHA-1 of the key bits it certifies; a compressed point is refused")
    func keyIdentifierMatchesTheCertifiedKey() throws {
        let root = try CertificateAuthority.createRoot(trustDomain: "example.org")
        let id = try SPIFFEID(parsing: "spiffe://example.org/muster/poller/p1/agent/a1")
        for _ in 0..<20 {
            let key = try CSRCheck.checkedKey(fromDER: try CSRTests.csr())
            let leaf = try root.issueLeaf(spiffeID: id, key: key)
            #expect(try leaf.extensions.subjectKeyIdentifier == SubjectKeyIdentifier(hash: leaf.publicKey))
            #expect(leaf.publicKey == key.publicKey)
        }
        // swift-certificates parses uncompressed points only, so the identifier is never read from other bits.
        #expect(throws: IdentityError(.csrUnsupportedKey, "")) {
            try CSRCheck.checkedKey(fromDER: try Self.compressedPointCSR())
        }
    }

    /// A P-256 CSR from openssl whose key is written as a compressed point (`02`/`03` || X).
    static func compressedPointCSR() throws -> [UInt8] {
        let directory = FileManager.default.temporaryDirectory.appending(path: "csr-\(UUID())").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        for arguments in [
            ["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", directory + "/k.pem"],
            ["ec", "-in", directory + "/k.pem", "-conv_form", "compressed", "-out", directory + "/kc.pem"],
            [
                "req", "-new", "-key", directory + "/kc.pem", "-subj", "/CN=x", "-outform", "DER", "-out",
                directory + "/r.der",
            ],
        ] {
            let process = Process()
            process.executableURL = URL(filePath: "/usr/bin/openssl")
            process.arguments = arguments
            process.standardError = FileHandle.nullDevice
            try process.run()
            process.waitUntilExit()
            #expect(process.terminationStatus == 0)
        }
        return Array(try Data(contentsOf: URL(filePath: directory + "/r.der")))
    }
}
