import Crypto
import SwiftASN1
import X509
import _CryptoExtras

/// Checks a PKCS#10 CSR and yields only its public key: the identity, lifetime and profile come from the caller's record.
public enum CSRCheck {
    /// The largest CSR accepted, in DER bytes.
    public static let maxBytes = 8 * 1024
    /// The most extensions a CSR may request.
    public static let maxExtensions = 32

    /// What the CSR is for: a leaf SVID may not ask to be a CA; a downstream CA's CSR may.
    public enum Purpose: Sendable { case leaf, certificateAuthority }

    /// A CSR's checked public key with its subject key identifier (RFC 5280 §4.2.1.2, method 1).
    public struct CheckedKey: Sendable {
        public let publicKey: Certificate.PublicKey
        /// SHA-1 of the key's subjectPublicKey bits, taken from the CSR's own bytes when they are the uncompressed
        /// point a certificate carries: swift-crypto re-encodes the point (a field inversion) every time it is asked.
        public let keyIdentifier: SubjectKeyIdentifier
        /// The CSR's P-256 key as the uncompressed point it sent (65 bytes), which a certificate carries as it is;
        /// nil when the CSR encoded it otherwise.
        let point: [UInt8]?
    }

    /// Parses `der`, checks its size, signature, key type and size and requested extensions; returns its public key.
    public static func publicKey(fromDER der: [UInt8], purpose: Purpose = .leaf) throws(IdentityError)
        -> Certificate.PublicKey
    {
        try checkedKey(fromDER: der, purpose: purpose).publicKey
    }

    /// As `publicKey(fromDER:purpose:)`, with the key's identifier for the certificate that certifies it.
    public static func checkedKey(fromDER der: [UInt8], purpose: Purpose = .leaf) throws(IdentityError) -> CheckedKey {
        guard der.count <= maxBytes else {
            throw IdentityError(.csrTooLarge, "the CSR is \(der.count) bytes; at most \(maxBytes) are accepted")
        }
        let csr: CertificateSigningRequest
        let root: ASN1Node
        do {
            // Parsed once: the key identifier below reads the same tree.
            root = try DER.parse(der)
            csr = try CertificateSigningRequest(derEncoded: root)
        } catch {
            // swift-certificates stops at 32 extensions while parsing; say so rather than "malformed".
            if String(describing: error).contains("Too many extensions") {
                throw IdentityError(.csrTooManyExtensions, "the CSR requests more than \(maxExtensions) extensions")
            }
            throw refusal(forUnparsable: der)
        }
        try checkKey(csr.publicKey)
        guard csr.publicKey.isValidSignature(csr.signature, for: csr) else {
            throw IdentityError(.csrBadSignature, "the CSR's signature does not verify with its own public key")
        }
        let requested: ExtensionRequest?
        do {
            requested = try csr.attributes.extensionRequest
        } catch {
            if String(describing: error).contains("Too many extensions") {
                throw IdentityError(.csrTooManyExtensions, "the CSR requests more than \(maxExtensions) extensions")
            }
            throw IdentityError(.csrMalformed, "the CSR's extension request cannot be parsed")
        }
        if let requested {
            let count = requested.extensions.count
            guard count <= maxExtensions else {
                throw IdentityError(
                    .csrTooManyExtensions, "the CSR requests \(count) extensions; at most \(maxExtensions) are accepted"
                )
            }
            if purpose == .leaf, let constraints = try? requested.extensions.basicConstraints,
                case .isCertificateAuthority = constraints
            {
                throw IdentityError(.csrRequestsCA, "the CSR asks for a CA certificate; an SVID is never a CA")
            }
        }
        // checkKey admitted only P-256, so a 65-byte uncompressed point here is that key.
        let point = uncompressedPoint(root).map { Array($0) }
        let identifier =
            point.map { SubjectKeyIdentifier(keyIdentifier: ArraySlice(Insecure.SHA1.hash(data: $0))) }
            ?? SubjectKeyIdentifier(hash: csr.publicKey)
        return CheckedKey(publicKey: csr.publicKey, keyIdentifier: identifier, point: point)
    }

    /// Parses a PEM CSR; see `publicKey(fromDER:purpose:)`.
    public static func publicKey(fromPEM pem: String, purpose: Purpose = .leaf) throws(IdentityError)
        -> Certificate.PublicKey
    {
        guard pem.utf8.count <= maxBytes * 2 else {
            throw IdentityError(.csrTooLarge, "the CSR is larger than \(maxBytes * 2) bytes of PEM")
        }
        let document: PEMDocument
        do {
            document = try PEMDocument(pemString: pem)
        } catch {
            throw IdentityError(.csrMalformed, "the CSR is not PEM")
        }
        guard document.discriminator == "CERTIFICATE REQUEST" || document.discriminator == "NEW CERTIFICATE REQUEST"
        else {
            throw IdentityError(
                .csrMalformed, "the PEM block is a \(document.discriminator), not a CERTIFICATE REQUEST")
        }
        return try publicKey(fromDER: document.derBytes, purpose: purpose)
    }

    /// Muster's keys are ECDSA P-256 (DESIGN.md, "Identities"): Muster's own components make nothing else, and
    /// one key type keeps every verifier on the path it is tested on. Anything else is refused by name.
    static func checkKey(_ key: Certificate.PublicKey) throws(IdentityError) {
        if P256.Signing.PublicKey(key) != nil { return }
        if P384.Signing.PublicKey(key) != nil {
            throw IdentityError(
                .csrUnsupportedKey, "the CSR's key is ECDSA P-384; Muster certifies ECDSA P-256 keys only")
        }
        if let rsa = _RSA.Signing.PublicKey(key) {
            guard rsa.keySizeInBits >= 2048 else {
                throw IdentityError(
                    .csrWeakKey, "the CSR's RSA key has \(rsa.keySizeInBits) bits; at least 2048 are required")
            }
            throw IdentityError(.csrUnsupportedKey, "the CSR's key is RSA; Muster certifies ECDSA P-256 keys only")
        }
        throw IdentityError(.csrUnsupportedKey, "the CSR's key type is not supported; use ECDSA P-256")
    }

    /// swift-certificates refuses to parse some keys outright (RSA under 2048 bits among them); say which.
    static func refusal(forUnparsable der: [UInt8]) -> IdentityError {
        guard let algorithm = try? subjectPublicKeyAlgorithm(der) else {
            return IdentityError(.csrMalformed, "the CSR is not a valid PKCS#10 request")
        }
        switch algorithm {
        case [1, 2, 840, 113549, 1, 1, 1]:
            return IdentityError(
                .csrWeakKey, "the CSR's RSA key is too small or malformed; at least 2048 bits are required")
        case [1, 2, 840, 10045, 2, 1]:
            return IdentityError(.csrUnsupportedKey, "the CSR's elliptic curve is not supported; use P-256")
        default:
            return IdentityError(.csrUnsupportedKey, "the CSR's key type is not supported; use ECDSA P-256")
        }
    }

    /// The OID of the SubjectPublicKeyInfo algorithm in a CSR, read straight from the DER.
    static func subjectPublicKeyAlgorithm(_ der: [UInt8]) throws -> [UInt] {
        let spki = try subjectPublicKeyInfo(try DER.parse(der))
        guard let algorithm = spki.first, case .constructed(let algorithmFields) = algorithm.content,
            let oidNode = algorithmFields.first(where: { _ in true })
        else {
            throw IdentityError(.csrMalformed, "not a CSR")
        }
        let oid = try ASN1ObjectIdentifier(derEncoded: oidNode)
        return Array(oid.oidComponents)
    }

    /// The subjectPublicKey bits of a parsed CSR when they are a 65-byte uncompressed P-256 point (`04 || X || Y`),
    /// the one encoding a certificate's SubjectPublicKeyInfo carries for the key; nil for any other form.
    static func uncompressedPoint(_ root: ASN1Node) -> ArraySlice<UInt8>? {
        guard let spki = try? subjectPublicKeyInfo(root), spki.count == 2,
            let bits = try? ASN1BitString(derEncoded: spki[1]), bits.paddingBits == 0, bits.bytes.count == 65,
            bits.bytes.first == 0x04
        else { return nil }
        return bits.bytes
    }

    /// The children of a CSR's SubjectPublicKeyInfo (algorithm, key bits), read straight from the DER.
    private static func subjectPublicKeyInfo(_ root: ASN1Node) throws -> [ASN1Node] {
        guard case .constructed(let request) = root.content,
            let info = request.first(where: { _ in true }), case .constructed(let infoFields) = info.content
        else {
            throw IdentityError(.csrMalformed, "not a CSR")
        }
        let fields = Array(infoFields)
        guard fields.count >= 3, case .constructed(let spki) = fields[2].content else {
            throw IdentityError(.csrMalformed, "not a CSR")
        }
        return Array(spki)
    }
}
