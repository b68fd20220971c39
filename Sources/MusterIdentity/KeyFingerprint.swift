import Crypto
import Foundation
import SwiftASN1
import X509

/// The fingerprint of a public key: `sha256:` + hex of its SubjectPublicKeyInfo DER (the form of a CA pin),
/// and a short form people can read to each other over the phone.
public enum KeyFingerprint {
    public static func of(_ key: Certificate.PublicKey) -> String {
        var serializer = DER.Serializer()
        try? serializer.serialize(key)
        return "sha256:" + ByteEncoding.hex(SHA256.hash(data: serializer.serializedBytes))
    }

    /// The fingerprint of the key in a leaf CSR, after the CSR passed every check `CSRCheck` makes.
    public static func ofCSR(_ der: [UInt8]) throws(IdentityError) -> String {
        of(try CSRCheck.publicKey(fromDER: der, purpose: .leaf))
    }

    /// The first 64 bits in four groups, e.g. `5F3A-91C2-0B7E-44D1`: enough to tell two keys apart by
    /// reading aloud; the full form is what an approval binds.
    public static func short(_ fingerprint: String) -> String {
        let hex = fingerprint.hasPrefix("sha256:") ? fingerprint.dropFirst(7) : Substring(fingerprint)
        let head = Array(hex.prefix(16).uppercased())
        return stride(from: 0, to: head.count, by: 4).map { String(head[$0..<min($0 + 4, head.count)]) }
            .joined(separator: "-")
    }
}
