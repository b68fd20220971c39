import Foundation
import MusterEdge
import MusterIdentity

/// libFuzzer entry: a package manifest (manifest.json) and the fields an installer checks in it.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzManifest(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let data = Data(UnsafeRawBufferPointer(start: start, count: count))
    guard let manifest = try? JSONDecoder().decode(PackageManifest.self, from: data) else { return 0 }
    _ = try? SPIFFEID(parsing: manifest.spiffeID)
    _ = try? CAPin.parse(manifest.caPin)
    _ = try? HostPort.validateAdvertised(manifest.connect)
    _ = try? HostPort.parse(manifest.connect)
    if let poller = manifest.pollerID { _ = try? MusterIDs.poller(trustDomain: manifest.trustDomain, name: poller) }
    let encoded = try? JSONEncoder().encode(manifest)
    precondition(
        encoded.flatMap { try? JSONDecoder().decode(PackageManifest.self, from: $0) } == manifest,
        "manifest does not round-trip")
    return 0
}
