import Crypto
import Foundation
import SwiftASN1
import X509

/// Writes a leaf X.509-SVID's DER directly. A leaf's layout never changes, so the parts every leaf of one CA shares
/// (the issuer's name, the constant extensions) are encoded once, by swift-certificates itself, and only the serial,
/// validity, subject, key and names are written per leaf. swift-certificates' builder serializes every field through
/// swift-asn1 and re-encodes the public key (a field inversion); this writes what the builder writes, byte for byte
/// (`LeafEncoderTests` compares them), for a fraction of the work. Used only for a P-256 CA signing a key whose
/// uncompressed point came with its CSR; anything else takes the builder.
struct LeafEncoder: Sendable {
    /// The CA's subject, DER: every leaf's issuer.
    private let issuer: [UInt8]
    /// BasicConstraints (cA=false), KeyUsage (digitalSignature) and ExtendedKeyUsage (server+client auth), DER.
    private let leadingExtensions: [UInt8]
    /// AuthorityKeyIdentifier (the CA's key identifier), DER.
    private let trailingExtensions: [UInt8]

    init?(certificate: Certificate) {
        guard P256.Signing.PublicKey(certificate.publicKey) != nil,
            let authorityKey = try? certificate.extensions.subjectKeyIdentifier?.keyIdentifier
        else { return nil }
        do {
            var name = DER.Serializer()
            try name.serialize(certificate.subject)
            issuer = name.serializedBytes
            var leading = DER.Serializer()
            try leading.serialize(Certificate.Extension(BasicConstraints.notCertificateAuthority, critical: true))
            try leading.serialize(Certificate.Extension(KeyUsage(digitalSignature: true), critical: true))
            try leading.serialize(
                Certificate.Extension(try ExtendedKeyUsage([.serverAuth, .clientAuth]), critical: false))
            leadingExtensions = leading.serializedBytes
            var trailing = DER.Serializer()
            try trailing.serialize(
                Certificate.Extension(AuthorityKeyIdentifier(keyIdentifier: authorityKey), critical: false))
            trailingExtensions = trailing.serializedBytes
        } catch {
            return nil
        }
    }

    /// The to-be-signed part of a leaf over the uncompressed P-256 `point`. Its subject alternative names are `uri`,
    /// then `dnsNames`, then `ipAddresses` (network-order bytes), as `CertificateAuthority.issueLeaf` orders them.
    func tbsCertificate(
        serial: Certificate.SerialNumber, notBefore: Date, notAfter: Date, commonName: String, point: [UInt8],
        keyIdentifier: ArraySlice<UInt8>, uri: String, dnsNames: [String], ipAddresses: [[UInt8]]
    ) throws(IdentityError) -> [UInt8] {
        precondition(point.count == 65 && point.first == 0x04, "an uncompressed P-256 point")
        var sans: [UInt8] = []
        LeafDER.append(0x86, Array(uri.utf8), to: &sans)
        for host in dnsNames { LeafDER.append(0x82, Array(host.utf8), to: &sans) }
        for address in ipAddresses { LeafDER.append(0x87, address, to: &sans) }
        var extensions = leadingExtensions
        let alternativeNames = LeafDER.tlv(0x04, LeafDER.tlv(0x30, sans))
        LeafDER.append(0x30, LeafDER.oid(Self.subjectAltName) + alternativeNames, to: &extensions)
        LeafDER.append(
            0x30, LeafDER.oid(Self.subjectKeyIdentifier) + LeafDER.tlv(0x04, LeafDER.tlv(0x04, Array(keyIdentifier))),
            to: &extensions)
        extensions += trailingExtensions

        var body: [UInt8] = Self.version3
        // The serial's bytes are an unsigned magnitude; a leading zero octet keeps a high first bit positive.
        LeafDER.append(0x02, (serial.bytes.first ?? 0x80) >= 0x80 ? [0] + serial.bytes : Array(serial.bytes), to: &body)
        body += Self.ecdsaWithSHA256
        body += issuer
        LeafDER.append(0x30, try LeafDER.time(notBefore) + LeafDER.time(notAfter), to: &body)
        let commonNameValue = LeafDER.oid(Self.commonName) + LeafDER.tlv(0x0c, Array(commonName.utf8))
        let commonNameRDN = LeafDER.tlv(0x31, LeafDER.tlv(0x30, commonNameValue))
        LeafDER.append(0x30, Self.organization + commonNameRDN, to: &body)
        body += Self.p256KeyPrefix
        body += point
        LeafDER.append(0xa3, LeafDER.tlv(0x30, extensions), to: &body)
        return LeafDER.tlv(0x30, body)
    }

    /// The whole certificate: `tbs`, the algorithm, and `signature` (an ECDSA-Sig-Value, DER) as a BIT STRING.
    static func certificate(tbs: [UInt8], signature: [UInt8]) -> [UInt8] {
        LeafDER.tlv(0x30, tbs + ecdsaWithSHA256 + LeafDER.tlv(0x03, [0] + signature))
    }

    /// `[0] EXPLICIT INTEGER 2`: version 3.
    private static let version3: [UInt8] = [0xa0, 0x03, 0x02, 0x01, 0x02]
    /// AlgorithmIdentifier ecdsa-with-SHA256 (1.2.840.10045.4.3.2), no parameters (RFC 5758).
    static let ecdsaWithSHA256: [UInt8] = [0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02]
    /// SubjectPublicKeyInfo up to the point: id-ecPublicKey, prime256v1, a BIT STRING of 66 bytes (no unused bits).
    private static let p256KeyPrefix: [UInt8] = [
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48,
        0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
    ]
    /// The subject's first RDN: O=Muster (UTF8String), as `DistinguishedName { OrganizationName("Muster") }` writes.
    private static let organization: [UInt8] = LeafDER.tlv(
        0x31, LeafDER.tlv(0x30, LeafDER.oid([0x55, 0x04, 0x0a]) + LeafDER.tlv(0x0c, Array("Muster".utf8))))
    private static let commonName: [UInt8] = [0x55, 0x04, 0x03]
    private static let subjectAltName: [UInt8] = [0x55, 0x1d, 0x11]
    private static let subjectKeyIdentifier: [UInt8] = [0x55, 0x1d, 0x0e]
}

/// The few DER primitives `LeafEncoder` needs (X.690 definite lengths).
enum LeafDER {
    static func tlv(_ tag: UInt8, _ content: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(content.count + 4)
        append(tag, content, to: &out)
        return out
    }

    static func append(_ tag: UInt8, _ content: [UInt8], to out: inout [UInt8]) {
        out.append(tag)
        let count = content.count
        if count < 0x80 {
            out.append(UInt8(count))
        } else if count <= 0xff {
            out += [0x81, UInt8(count)]
        } else if count <= 0xffff {
            out += [0x82, UInt8(count >> 8), UInt8(count & 0xff)]
        } else {
            precondition(count <= 0xff_ffff, "a DER element under 16 MiB")
            out += [0x83, UInt8(count >> 16), UInt8(count >> 8 & 0xff), UInt8(count & 0xff)]
        }
        out += content
    }

    static func oid(_ encoded: [UInt8]) -> [UInt8] { tlv(0x06, encoded) }

    /// RFC 5280 §4.1.2.5: UTCTime (YYMMDDHHMMSSZ) for 1950–2049, GeneralizedTime (YYYYMMDDHHMMSSZ) otherwise;
    /// whole seconds, rounded as swift-certificates rounds them.
    static func time(_ date: Date) throws(IdentityError) -> [UInt8] {
        let seconds = Int64(date.timeIntervalSince1970.rounded())
        let (days, secondOfDay) = (seconds.floorDivided(by: 86_400), seconds.floorModulo(86_400))
        let (year, month, day) = civil(daysSince1970: days)
        guard (0...9999).contains(year) else {
            throw IdentityError(.badLifetime, "a certificate time must fall in the years 0 to 9999, not \(year)")
        }
        var text = (1950..<2050).contains(year) ? digits(year % 100, 2) : digits(year, 4)
        text += digits(month, 2) + digits(day, 2) + digits(Int(secondOfDay / 3600), 2)
        text += digits(Int(secondOfDay % 3600 / 60), 2) + digits(Int(secondOfDay % 60), 2) + [UInt8(ascii: "Z")]
        return tlv((1950..<2050).contains(year) ? 0x17 : 0x18, text)
    }

    private static func digits(_ value: Int, _ width: Int) -> [UInt8] {
        var out = [UInt8](repeating: UInt8(ascii: "0"), count: width)
        var rest = value
        for index in stride(from: width - 1, through: 0, by: -1) {
            out[index] = UInt8(ascii: "0") + UInt8(rest % 10)
            rest /= 10
        }
        return out
    }

    /// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's days-to-civil algorithm).
    static func civil(daysSince1970 days: Int64) -> (year: Int, month: Int, day: Int) {
        let shifted = days + 719_468
        let era = shifted.floorDivided(by: 146_097)
        let dayOfEra = shifted - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
        let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        return (Int(year), Int(month), Int(day))
    }
}

extension Int64 {
    fileprivate func floorDivided(by divisor: Int64) -> Int64 {
        let quotient = self / divisor
        return (self % divisor != 0 && (self < 0) != (divisor < 0)) ? quotient - 1 : quotient
    }

    fileprivate func floorModulo(_ divisor: Int64) -> Int64 { self - floorDivided(by: divisor) * divisor }
}
