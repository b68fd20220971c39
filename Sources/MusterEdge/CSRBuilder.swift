import Crypto
import SwiftASN1
import X509

/// PKCS#10 requests an edge host sends: only the public key and a proof of possession leave the machine;
/// the identity comes from the server's record, so the subject is a fixed label.
public enum CSRBuilder {
    /// A DER CSR over `key`; `ca` asks for a CA (`pathLen=0`) rather than a leaf.
    public static func make(key: P256.Signing.PrivateKey, label: String, ca: Bool = false) throws -> [UInt8] {
        var attributes = CertificateSigningRequest.Attributes()
        if ca {
            let extensions = try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
            }
            attributes.insert(try CertificateSigningRequest.Attribute(ExtensionRequest(extensions: extensions)))
        }
        let request = try CertificateSigningRequest(
            version: .v1, subject: try DistinguishedName { CommonName(label) }, privateKey: .init(key),
            attributes: attributes, signatureAlgorithm: .ecdsaWithSHA256
        )
        var serializer = DER.Serializer()
        try serializer.serialize(request)
        return serializer.serializedBytes
    }
}
