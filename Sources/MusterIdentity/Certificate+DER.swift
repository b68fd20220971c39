import Foundation
import SwiftASN1
import X509

/// Certificates as they travel in Muster's protobuf messages: one DER blob each.
extension Certificate {
    public func derData() throws -> Data {
        var serializer = DER.Serializer()
        try serializer.serialize(self)
        return Data(serializer.serializedBytes)
    }

    /// Parses a list of DER certificates (a chain or a bundle) in order.
    public static func list(derEncoded blobs: [Data]) throws -> [Certificate] {
        try blobs.map { try Certificate(derEncoded: Array($0)) }
    }
}
