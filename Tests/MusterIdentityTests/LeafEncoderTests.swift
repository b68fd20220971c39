import Crypto
import Foundation
import Testing
import X509

@testable import MusterIdentity

@Suite("Leaf SVIDs written without the certificate builder")
struct LeafEncoderTests {
    /// A CSR's checked key, as a join or an attestation gets it.
    static func checkedKey() throws -> (CSRCheck.CheckedKey, P256.Signing.PrivateKey) {
        let key = P256.Signing.PrivateKey()
        return (try CSRCheck.checkedKey(fromDER: try CSRTests.csr(key: key)), key)
    }

    /// Issues one leaf both ways with the same inputs and expects the same to-be-signed bytes, a signature that
    /// verifies with the CA's key, and the key the CSR held.
    static func expectSameAsBuilder(
        _ authority: CertificateAuthority, id: String, dnsNames: [String] = [], ipAddresses: [String] = [],
        lifetime: TimeInterval = 3600, now: Date, serial: Certificate.SerialNumber = SerialNumber.random()
    ) throws {
        let (key, privateKey) = try checkedKey()
        let spiffeID = try SPIFFEID(parsing: id)
        let written = try authority.issueLeaf(
            spiffeID: spiffeID, key: key, dnsNames: dnsNames, ipAddresses: ipAddresses, lifetime: lifetime, now: now,
            serial: serial)
        let built = try authority.issueLeaf(
            spiffeID: spiffeID, publicKey: key.publicKey, keyIdentifier: key.keyIdentifier, dnsNames: dnsNames,
            ipAddresses: ipAddresses, lifetime: lifetime, now: now, serial: serial)
        #expect(Array(written.tbsCertificateBytes) == Array(built.tbsCertificateBytes))
        #expect(written.extensions == built.extensions && written.subject == built.subject)
        #expect(written.notValidBefore == built.notValidBefore && written.notValidAfter == built.notValidAfter)
        #expect(authority.certificate.publicKey.isValidSignature(written.signature, for: written))
        #expect(written.publicKey == Certificate.PublicKey(privateKey.publicKey))
        // The whole certificate round-trips through the library unchanged.
        let der = try written.derData()
        #expect(try Certificate(derEncoded: Array(der)).derData() == der)

        // The DER a join sends: the same certificate, and the serial and NotAfter it says it holds.
        let issued = try authority.issueLeafDER(
            spiffeID: spiffeID, key: key, dnsNames: dnsNames, ipAddresses: ipAddresses, lifetime: lifetime, now: now,
            serial: serial)
        let parsed = try Certificate(derEncoded: issued.der)
        #expect(Array(parsed.tbsCertificateBytes) == Array(built.tbsCertificateBytes))
        #expect(authority.certificate.publicKey.isValidSignature(parsed.signature, for: parsed))
        #expect(parsed.serialNumber == issued.serial && parsed.notValidAfter == issued.notValidAfter)
        #expect(issued.serialText == parsed.serialText)
        let chain = try authority.presentedChain(for: parsed).map { try $0.derData() }
        #expect(try authority.presentedChainDER(for: issued) == chain)
        #expect(PEM.encode(certificateDER: issued.der) == (try PEM.encode([parsed])))
    }

    @Test("a root's leaf is byte for byte the builder's, over many keys and serials")
    func rootLeaves() throws {
        let root = try CertificateAuthority.createRoot(trustDomain: "example.org")
        for index in 0..<40 {
            try Self.expectSameAsBuilder(
                root, id: "spiffe://example.org/muster/poller/p\(index)/agent/a-\(index)", now: Date())
        }
        // Leading zero octets are dropped from a serial, as DER wants.
        try Self.expectSameAsBuilder(
            root, id: "spiffe://example.org/muster/poller/p1", now: Date(),
            serial: Certificate.SerialNumber(bytes: [0x00, 0x00, 0x7f, 0x01]))
        // A serial is an unsigned magnitude: a top bit set takes a leading zero octet to stay positive.
        try Self.expectSameAsBuilder(
            root, id: "spiffe://example.org/muster/poller/p1", now: Date(),
            serial: Certificate.SerialNumber(bytes: [0x80, 0x01, 0x02]))
    }

    @Test("a poller CA's leaf with DNS names and IPv4 and IPv6 addresses is the builder's")
    func servingLeaves() throws {
        let authority = try TestAuthority()
        let pollerCA = try authority.downstream(poller: "p1")
        try Self.expectSameAsBuilder(
            pollerCA, id: "spiffe://example.org/muster/poller/p1/checker/c.1", now: Date())
        try Self.expectSameAsBuilder(
            authority.root, id: "spiffe://example.org/muster/poller/p1",
            dnsNames: ["poller.example.org", "p1.site-a.example"], ipAddresses: ["10.0.0.7", "fd00::1"], now: Date())
        let longName = String(repeating: "n", count: 63) + "." + String(repeating: "d", count: 63) + ".example"
        try Self.expectSameAsBuilder(
            authority.root, id: "spiffe://example.org/muster/core", dnsNames: [longName, "localhost"],
            ipAddresses: ["127.0.0.1"], now: Date())
    }

    @Test("times: rounded to the second, cut at the CA's NotAfter, UTCTime until 2049 and GeneralizedTime after")
    func times() throws {
        let root = try CertificateAuthority.createRoot(trustDomain: "example.org")
        for fraction in [0.0, 0.25, 0.4999, 0.5, 0.75] {
            try Self.expectSameAsBuilder(
                root, id: "spiffe://example.org/muster/poller/p1",
                now: Date(timeIntervalSince1970: 1_800_000_000 + fraction))
        }
        // NotAfter cut to the CA's own.
        try Self.expectSameAsBuilder(
            root, id: "spiffe://example.org/muster/poller/p1", lifetime: 20 * 365 * 86_400, now: Date())

        let turnOfCentury = Date(timeIntervalSince1970: 2_524_607_990)  // 2049-12-31T23:59:50Z
        let late = try CertificateAuthority.createRoot(
            trustDomain: "example.org", lifetime: 365 * 86_400, now: turnOfCentury - 86_400)
        try Self.expectSameAsBuilder(late, id: "spiffe://example.org/muster/poller/p1", now: turnOfCentury)
        try Self.expectSameAsBuilder(late, id: "spiffe://example.org/muster/poller/p1", now: turnOfCentury + 30)
        let leaf = try late.issueLeaf(
            spiffeID: try SPIFFEID(parsing: "spiffe://example.org/muster/poller/p1"), key: try Self.checkedKey().0,
            now: turnOfCentury)
        #expect(leaf.notValidAfter == Date(timeIntervalSince1970: 2_524_611_590))

        let sixties = Date(timeIntervalSince1970: -100_000_000.5)
        let old = try CertificateAuthority.createRoot(trustDomain: "example.org", now: sixties - 60)
        try Self.expectSameAsBuilder(old, id: "spiffe://example.org/muster/poller/p1", now: sixties)
    }

    @Test("days since 1970 become the Gregorian date Foundation's calendar gives, 1600 to 9999")
    func civilDates() throws {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = try #require(TimeZone(identifier: "UTC"))
        var days: [Int64] = Array(stride(from: -135_000, through: 2_932_000, by: 997))
        days += [-1, 0, 1, 59, 60, 365, 10_956, 11_016, 11_017, 47_481, 47_482, 2_932_896]
        for day in days {
            let parts = calendar.dateComponents(
                [.year, .month, .day], from: Date(timeIntervalSince1970: Double(day) * 86_400))
            let civil = LeafDER.civil(daysSince1970: day)
            #expect(civil.year == parts.year && civil.month == parts.month && civil.day == parts.day, "day \(day)")
        }
    }

    @Test("a key without its uncompressed point takes the builder, and says what it holds the same way")
    func builderFallback() throws {
        let root = try CertificateAuthority.createRoot(trustDomain: "example.org")
        let (written, privateKey) = try Self.checkedKey()
        let key = CSRCheck.CheckedKey(publicKey: written.publicKey, keyIdentifier: written.keyIdentifier, point: nil)
        let serial = SerialNumber.random()
        let issued = try root.issueLeafDER(
            spiffeID: try SPIFFEID(parsing: "spiffe://example.org/muster/core"), key: key, dnsNames: ["core.example"],
            now: Date(timeIntervalSince1970: 1_800_000_000.5), serial: serial)
        let parsed = try Certificate(derEncoded: issued.der)
        #expect(parsed.serialNumber == serial && issued.serial == serial)
        #expect(parsed.notValidAfter == issued.notValidAfter)
        #expect(issued.notValidAfter == Date(timeIntervalSince1970: 1_800_003_601))
        #expect(parsed.publicKey == Certificate.PublicKey(privateKey.publicKey))
        #expect(root.certificate.publicKey.isValidSignature(parsed.signature, for: parsed))
    }

    @Test("a DNS name that is not ASCII is refused as the builder refuses it")
    func nonASCIIName() throws {
        let root = try CertificateAuthority.createRoot(trustDomain: "example.org")
        #expect(throws: (any Error).self) {
            try root.issueLeaf(
                spiffeID: try SPIFFEID(parsing: "spiffe://example.org/muster/core"), key: try Self.checkedKey().0,
                dnsNames: ["bücher.example"])
        }
    }
}
