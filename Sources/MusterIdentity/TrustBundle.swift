import Crypto
import Foundation
import SwiftASN1
import X509

/// A trust domain's X.509 roots, as PEM or as a SPIFFE bundle (a JWK set). It may hold several roots, so a CA
/// rotation needs no format change.
public struct TrustBundle: Sendable, Equatable {
    public let trustDomain: String
    public var roots: [Certificate]
    /// `spiffe_sequence`: grows with every change of the bundle.
    public var sequence: UInt64
    /// `spiffe_refresh_hint`, in seconds.
    public var refreshHint: Int

    public init(trustDomain: String, roots: [Certificate], sequence: UInt64 = 1, refreshHint: Int = 300) {
        self.trustDomain = trustDomain
        self.roots = roots
        self.sequence = sequence
        self.refreshHint = refreshHint
    }

    // MARK: PEM

    public func pem() throws -> String { try PEM.encode(roots) }

    /// Reads every CERTIFICATE block of `pem`; other blocks are refused.
    public init(trustDomain: String, pem: String) throws(IdentityError) {
        let documents: [PEMDocument]
        do {
            documents = try PEMDocument.parseMultiple(pemString: pem)
        } catch {
            throw IdentityError(.bundleMalformed, "the bundle is not PEM")
        }
        var roots: [Certificate] = []
        for document in documents {
            guard document.discriminator == "CERTIFICATE" else {
                throw IdentityError(
                    .bundleMalformed,
                    "the bundle holds a \(document.discriminator) block; only certificates belong there")
            }
            do {
                roots.append(try Certificate(derEncoded: document.derBytes))
            } catch {
                throw IdentityError(
                    .certificateMalformed, "certificate \(roots.count + 1) of the bundle cannot be parsed")
            }
        }
        self.init(trustDomain: trustDomain, roots: roots)
    }

    // MARK: SPIFFE bundle (JWK set)

    /// The SPIFFE bundle JSON: one JWK a root, `use` `x509-svid`, its DER in `x5c`, no `kid`.
    public func spiffeJSON() throws -> Data {
        var keys: [[String: Any]] = []
        for root in roots {
            var key = try Self.jwk(for: root.publicKey)
            key["use"] = "x509-svid"
            key["x5c"] = [Data(try root.serializeAsPEM().derBytes).base64EncodedString()]
            keys.append(key)
        }
        let object: [String: Any] = ["keys": keys, "spiffe_sequence": sequence, "spiffe_refresh_hint": refreshHint]
        return try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
    }

    /// Parses a SPIFFE bundle by the spec's rules: entries whose `use` is not `x509-svid` are ignored, only the
    /// first `x5c` of an entry is used, and an empty key set trusts nothing.
    public init(trustDomain: String, spiffeJSON data: Data) throws(IdentityError) {
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw IdentityError(.bundleMalformed, "the SPIFFE bundle is not a JSON object")
        }
        guard let keys = object["keys"] as? [Any] else {
            throw IdentityError(.bundleMalformed, "the SPIFFE bundle has no 'keys' array")
        }
        var roots: [Certificate] = []
        for (index, entry) in keys.enumerated() {
            guard let key = entry as? [String: Any] else {
                throw IdentityError(.bundleMalformed, "key \(index) of the SPIFFE bundle is not an object")
            }
            guard key["use"] as? String == "x509-svid" else { continue }
            guard let chain = key["x5c"] as? [String], let first = chain.first, let der = Data(base64Encoded: first)
            else {
                throw IdentityError(.bundleMalformed, "x509-svid key \(index) has no base64 certificate in 'x5c'")
            }
            do {
                roots.append(try Certificate(derEncoded: Array(der)))
            } catch {
                throw IdentityError(.certificateMalformed, "the certificate of x509-svid key \(index) cannot be parsed")
            }
        }
        let sequence = (object["spiffe_sequence"] as? NSNumber)?.uint64Value ?? 0
        let hint = (object["spiffe_refresh_hint"] as? NSNumber)?.intValue ?? 0
        self.init(trustDomain: trustDomain, roots: roots, sequence: sequence, refreshHint: hint)
    }

    static func jwk(for key: Certificate.PublicKey) throws -> [String: Any] {
        func base64URL(_ bytes: ArraySlice<UInt8>) -> String { ByteEncoding.base64URL(bytes) }
        if let p256 = P256.Signing.PublicKey(key) {
            let point = Array(p256.x963Representation.dropFirst())
            return ["kty": "EC", "crv": "P-256", "x": base64URL(point[0..<32]), "y": base64URL(point[32..<64])]
        }
        if let p384 = P384.Signing.PublicKey(key) {
            let point = Array(p384.x963Representation.dropFirst())
            return ["kty": "EC", "crv": "P-384", "x": base64URL(point[0..<48]), "y": base64URL(point[48..<96])]
        }
        throw IdentityError(.bundleMalformed, "only EC roots can be written to a SPIFFE bundle")
    }

    /// The CA pin of the first root: `sha256:` + hex of its SubjectPublicKeyInfo DER.
    public var pin: String? { roots.first.map(CAPin.of) }
}

/// `sha256:` pins of a CA's SubjectPublicKeyInfo, kubeadm's convention.
public enum CAPin {
    public static func of(_ certificate: Certificate) -> String { KeyFingerprint.of(certificate.publicKey) }

    /// Checks a pin's form; returns it lowercased.
    public static func parse(_ text: String) throws(IdentityError) -> String {
        let lower = text.lowercased()
        let hex = lower.dropFirst("sha256:".count)
        guard lower.hasPrefix("sha256:"), hex.count == 64, hex.allSatisfy(\.isHexDigit) else {
            throw IdentityError(.bundleMalformed, "a CA pin is sha256: followed by 64 hex digits")
        }
        return lower
    }
}
