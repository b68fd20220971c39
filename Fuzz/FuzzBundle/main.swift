import Foundation
import MusterIdentity

/// libFuzzer entry: a trust bundle as a SPIFFE bundle (JWK set JSON) and as PEM.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzBundle(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let data = Data(UnsafeRawBufferPointer(start: start, count: count))
    if let bundle = try? TrustBundle(trustDomain: "example.org", spiffeJSON: data), let json = try? bundle.spiffeJSON()
    {
        // What was read writes out and reads back to the same roots.
        precondition(
            (try? TrustBundle(trustDomain: "example.org", spiffeJSON: json))?.roots == bundle.roots,
            "bundle does not round-trip")
    }
    _ = try? TrustBundle(trustDomain: "example.org", pem: String(decoding: data, as: UTF8.self))
    return 0
}
