import Crypto
import Foundation
import SwiftASN1
import X509

/// A signing CA: its certificate, its key and the chain above it (empty for a root).
/// Issues X.509-SVIDs whose identity comes from the caller, never from the request.
public struct CertificateAuthority: Sendable {
    public let certificate: Certificate
    public let privateKey: Certificate.PrivateKey
    /// The CAs above this one, nearest first (empty for a root; a trailing root is never presented).
    public let chainToRoot: [Certificate]
    /// Writes this CA's leaves without swift-certificates' builder, when the CA's key is P-256 (see `LeafEncoder`).
    private let leafEncoder: LeafEncoder?
    /// The DER of the CAs a leaf's holder presents above it, written once rather than for every leaf.
    private let presentedIssuersDER: [Data]?

    /// NotBefore is backdated this far to absorb clock skew between machines.
    public static let backdate: TimeInterval = 10

    public init(certificate: Certificate, privateKey: Certificate.PrivateKey, chainToRoot: [Certificate] = []) {
        self.certificate = certificate
        self.privateKey = privateKey
        self.chainToRoot = chainToRoot
        self.leafEncoder = LeafEncoder(certificate: certificate)
        self.presentedIssuersDER = try? Self.presentedIssuers(of: certificate, chainToRoot, includingRoot: false).map {
            try $0.derData()
        }
    }

    /// Creates a self-signed root CA for `trustDomain` with a new P-256 key.
    public static func createRoot(trustDomain: String, lifetime: TimeInterval = 10 * 365 * 86_400, now: Date = Date())
        throws -> CertificateAuthority
    {
        let key = P256.Signing.PrivateKey()
        let publicKey = Certificate.PublicKey(key.publicKey)
        let name = try rootName(trustDomain: trustDomain)
        let extensions = try Certificate.Extensions {
            Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil))
            Critical(KeyUsage(keyCertSign: true, cRLSign: true))
            SubjectKeyIdentifier(hash: publicKey)
        }
        let certificate = try Certificate(
            version: .v3, serialNumber: SerialNumber.random(), publicKey: publicKey,
            notValidBefore: now - backdate, notValidAfter: now + lifetime,
            issuer: name, subject: name, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: extensions, issuerPrivateKey: Certificate.PrivateKey(key)
        )
        return CertificateAuthority(certificate: certificate, privateKey: Certificate.PrivateKey(key))
    }

    /// The subject (and issuer) name of the root CA of `trustDomain`; a stored root is matched against it.
    public static func rootName(trustDomain: String) throws -> DistinguishedName {
        try DistinguishedName {
            OrganizationName("Muster")
            CommonName("Muster root CA \(trustDomain)")
        }
    }

    /// Signs a certificate issued by this CA: backdated NotBefore, never past this CA's NotAfter.
    private func sign(
        subject: DistinguishedName, publicKey: Certificate.PublicKey, extensions: Certificate.Extensions,
        lifetime: TimeInterval, now: Date, serial: Certificate.SerialNumber = SerialNumber.random()
    ) throws -> Certificate {
        try Certificate(
            version: .v3, serialNumber: serial, publicKey: publicKey,
            notValidBefore: now - Self.backdate, notValidAfter: notValidAfter(lifetime: lifetime, now: now),
            issuer: certificate.subject, subject: subject, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: extensions, issuerPrivateKey: privateKey
        )
    }

    /// Issues a leaf X.509-SVID for `spiffeID` over `publicKey`: one URI SAN (plus optional DNS/IP names
    /// for serving certificates), `cA=false`, digitalSignature only, server+client auth.
    public func issueLeaf(
        spiffeID: SPIFFEID, publicKey: Certificate.PublicKey, dnsNames: [String] = [], ipAddresses: [String] = [],
        lifetime: TimeInterval = 3600, now: Date = Date()
    ) throws -> Certificate {
        try issueLeaf(
            spiffeID: spiffeID, publicKey: publicKey, keyIdentifier: SubjectKeyIdentifier(hash: publicKey),
            dnsNames: dnsNames, ipAddresses: ipAddresses, lifetime: lifetime, now: now)
    }

    /// Issues a leaf for a key a CSR check passed; its identifier comes with it (see `CSRCheck.CheckedKey`). A
    /// caller that records the serial before signing (the poller's join) passes it in.
    public func issueLeaf(
        spiffeID: SPIFFEID, key: CSRCheck.CheckedKey, dnsNames: [String] = [], ipAddresses: [String] = [],
        lifetime: TimeInterval = 3600, now: Date = Date(), serial: Certificate.SerialNumber = SerialNumber.random()
    ) throws -> Certificate {
        let issued = try issueLeafDER(
            spiffeID: spiffeID, key: key, dnsNames: dnsNames, ipAddresses: ipAddresses, lifetime: lifetime, now: now,
            serial: serial)
        return try Certificate(derEncoded: issued.der)
    }

    /// As `issueLeaf(spiffeID:key:…)`, for a caller that only sends the leaf on (the poller's joins and renewals):
    /// its DER, without parsing it back into a `Certificate` — a parse costs about as much as writing it.
    public func issueLeafDER(
        spiffeID: SPIFFEID, key: CSRCheck.CheckedKey, dnsNames: [String] = [], ipAddresses: [String] = [],
        lifetime: TimeInterval = 3600, now: Date = Date(), serial: Certificate.SerialNumber = SerialNumber.random()
    ) throws -> IssuedLeaf {
        let ipBytes = try ipAddresses.map { try IPAddressBytes.parse($0) }
        // The encoder writes names as they are; the builder refuses a DNS name that is not IA5 (ASCII) text.
        if let leafEncoder, let point = key.point, dnsNames.allSatisfy({ $0.utf8.allSatisfy { $0 < 0x80 } }) {
            let notAfter = notValidAfter(lifetime: lifetime, now: now)
            let tbs = try leafEncoder.tbsCertificate(
                serial: serial, notBefore: now - Self.backdate, notAfter: notAfter,
                commonName: Self.leafCommonName(spiffeID), point: point,
                keyIdentifier: key.keyIdentifier.keyIdentifier, uri: spiffeID.description, dnsNames: dnsNames,
                ipAddresses: ipBytes)
            let signature = try privateKey.sign(bytes: tbs, signatureAlgorithm: .ecdsaWithSHA256)
            return IssuedLeaf(
                der: LeafEncoder.certificate(tbs: tbs, signature: signature.rawRepresentation), serial: serial,
                notValidAfter: Date(timeIntervalSince1970: notAfter.timeIntervalSince1970.rounded()))
        }
        let leaf = try issueLeaf(
            spiffeID: spiffeID, publicKey: key.publicKey, keyIdentifier: key.keyIdentifier, dnsNames: dnsNames,
            ipAddresses: ipAddresses, lifetime: lifetime, now: now, serial: serial)
        return IssuedLeaf(der: Array(try leaf.derData()), serial: leaf.serialNumber, notValidAfter: leaf.notValidAfter)
    }

    /// The DER chain a holder of `leaf` presents (see `presentedChain(for:includingRoot:)`).
    public func presentedChainDER(for leaf: IssuedLeaf) throws -> [Data] {
        [Data(leaf.der)] + (try presentedIssuersDER ?? presentedIssuers(includingRoot: false).map { try $0.derData() })
    }

    /// A leaf's subject CN. Never a bare name: OpenSSL checks a CN that looks like a hostname against DNS name
    /// constraints, and a poller's CA excludes every DNS name.
    static func leafCommonName(_ spiffeID: SPIFFEID) -> String {
        "Muster \(MusterID(spiffeID)?.description ?? String(spiffeID.segments.last ?? ""))"
    }

    /// The NotAfter of a certificate this CA signs at `now` for `lifetime`: never past the CA's own.
    public func notValidAfter(lifetime: TimeInterval, now: Date) -> Date {
        min(now + lifetime, certificate.notValidAfter)
    }

    /// The builder's way, for any key (`LeafEncoderTests` holds the encoder's output to it).
    func issueLeaf(
        spiffeID: SPIFFEID, publicKey: Certificate.PublicKey, keyIdentifier: SubjectKeyIdentifier,
        dnsNames: [String], ipAddresses: [String], lifetime: TimeInterval, now: Date,
        serial: Certificate.SerialNumber = SerialNumber.random()
    ) throws -> Certificate {
        var names: [GeneralName] = [.uniformResourceIdentifier(spiffeID.description)]
        names += dnsNames.map { .dnsName($0) }
        names += try ipAddresses.map { .ipAddress(ASN1OctetString(contentBytes: try IPAddressBytes.parse($0)[...])) }
        let subject = try DistinguishedName {
            OrganizationName("Muster")
            CommonName(Self.leafCommonName(spiffeID))
        }
        let extensions = try Certificate.Extensions {
            Critical(BasicConstraints.notCertificateAuthority)
            Critical(KeyUsage(digitalSignature: true))
            try ExtendedKeyUsage([.serverAuth, .clientAuth])
            SubjectAlternativeNames(names)
            keyIdentifier
            AuthorityKeyIdentifier(keyIdentifier: try certificate.extensions.subjectKeyIdentifier?.keyIdentifier)
        }
        return try sign(
            subject: subject, publicKey: publicKey, extensions: extensions, lifetime: lifetime, now: now, serial: serial
        )
    }

    /// Issues a poller's downstream CA over `publicKey`: `cA=true`, `pathLen=0`, keyCertSign + cRLSign,
    /// the poller's SPIFFE ID as its one URI SAN (which scopes its leaves under Muster's path rule), and name
    /// constraints that permit URIs of the trust domain only and exclude every DNS name and IP address, so no
    /// standard verifier accepts a certificate this CA signs for a host name.
    public func issueDownstreamCA(
        pollerID: SPIFFEID, publicKey: Certificate.PublicKey, lifetime: TimeInterval = 24 * 3600, now: Date = Date()
    ) throws -> Certificate {
        let subject = try DistinguishedName {
            OrganizationName("Muster")
            CommonName("Muster poller CA \(pollerID.segments.last ?? "")")
        }
        let extensions = try Certificate.Extensions {
            Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
            Critical(KeyUsage(keyCertSign: true, cRLSign: true))
            SubjectAlternativeNames([.uniformResourceIdentifier(pollerID.description)])
            Critical(
                NameConstraints(
                    excludedDNSDomains: [""],
                    excludedIPRanges: [
                        ASN1OctetString(contentBytes: [UInt8](repeating: 0, count: 8)[...]),
                        ASN1OctetString(contentBytes: [UInt8](repeating: 0, count: 32)[...]),
                    ],
                    permittedURIDomains: [pollerID.trustDomain]
                ))
            SubjectKeyIdentifier(hash: publicKey)
            AuthorityKeyIdentifier(keyIdentifier: try certificate.extensions.subjectKeyIdentifier?.keyIdentifier)
        }
        return try sign(subject: subject, publicKey: publicKey, extensions: extensions, lifetime: lifetime, now: now)
    }

    /// The chain a holder of `leaf` presents: the leaf, then the CAs from this one upward;
    /// the root is left out unless asked for (a pinned first contact needs it).
    public func presentedChain(for leaf: Certificate, includingRoot: Bool = false) -> [Certificate] {
        [leaf] + presentedIssuers(includingRoot: includingRoot)
    }

    /// This CA and those above it, as a holder of one of its leaves presents them.
    private func presentedIssuers(includingRoot: Bool) -> [Certificate] {
        Self.presentedIssuers(of: certificate, chainToRoot, includingRoot: includingRoot)
    }

    private static func presentedIssuers(of certificate: Certificate, _ chainToRoot: [Certificate], includingRoot: Bool)
        -> [Certificate]
    {
        let issuers = [certificate] + chainToRoot
        return includingRoot ? issuers : issuers.filter { $0.subject != $0.issuer }
    }
}

/// A leaf as issued: its DER, with the serial and NotAfter (whole seconds, as the certificate carries it) it holds.
public struct IssuedLeaf: Sendable {
    public let der: [UInt8]
    public let serial: Certificate.SerialNumber
    public let notValidAfter: Date

    /// The serial as Muster records it.
    public var serialText: String { SerialNumber.text(serial) }
}

/// PEM text for certificates and keys.
public enum PEM {
    public static func encode(_ certificates: [Certificate]) throws -> String {
        var text = ""
        for certificate in certificates {
            var serializer = DER.Serializer()
            try serializer.serialize(certificate)
            text += block(serializer.serializedBytes, label: "CERTIFICATE")
        }
        return text
    }

    /// One certificate's PEM block from its DER (an `IssuedLeaf`'s, say).
    public static func encode(certificateDER der: [UInt8]) -> String { block(der, label: "CERTIFICATE") }

    /// One PEM block (RFC 7468: base64 in lines of 64, LF line ends). swift-certificates' own PEM writer walks
    /// the text by `Substring` index and cost a fifth of a leaf issuance.
    static func block(_ der: [UInt8], label: String) -> String {
        let body = Data(der).base64EncodedString(options: [.lineLength64Characters, .endLineWithLineFeed])
        return "-----BEGIN \(label)-----\n\(body)\n-----END \(label)-----\n"
    }

    public static func encode(_ key: Certificate.PrivateKey) throws -> String {
        try key.serializeAsPEM().pemString + "\n"
    }
}

/// Parses textual IPv4 and IPv6 addresses to their network-order bytes.
enum IPAddressBytes {
    struct Invalid: Error, CustomStringConvertible {
        let text: String
        var description: String { "'\(text)' is not an IP address" }
    }

    static func parse(_ text: String) throws -> [UInt8] {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 { return withUnsafeBytes(of: &v6) { Array($0) } }
        throw Invalid(text: text)
    }
}
