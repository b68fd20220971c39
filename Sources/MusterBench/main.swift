// muster-bench: Muster's benchmarks that run inside one process (see Docs/benchmarks.md).
//   muster-bench issuance [COUNT]   leaf SVIDs from CSRs on one thread (CSR check + sign + PEM encode)
//   muster-bench ecdsa [COUNT]      swift-crypto P-256 verify + sign pairs on one thread (the library's ceiling)
import Crypto
import Foundation
import MusterIdentity
import SwiftASN1
import X509

func issuanceBenchmark(count: Int) throws {
    let authority = try CertificateAuthority.createRoot(trustDomain: "bench.muster.local")
    // The CSRs are made up front: on the wire they come from the agents.
    let csrs: [[UInt8]] = try (0..<count).map { _ in
        let key = P256.Signing.PrivateKey()
        let request = try CertificateSigningRequest(
            version: .v1, subject: try DistinguishedName { CommonName("agent") }, privateKey: .init(key),
            attributes: .init(), signatureAlgorithm: .ecdsaWithSHA256)
        var serializer = DER.Serializer()
        try serializer.serialize(request)
        return serializer.serializedBytes
    }
    let ids = try (0..<count).map {
        try MusterIDs.agent(trustDomain: "bench.muster.local", poller: "p1", name: "a\($0)")
    }
    var bytes = 0
    let clock = ContinuousClock()
    let elapsed = try clock.measure {
        for index in 0..<count {
            let key = try CSRCheck.checkedKey(fromDER: csrs[index])
            let leaf = try authority.issueLeafDER(spiffeID: ids[index], key: key)
            bytes += PEM.encode(certificateDER: leaf.der).utf8.count
        }
    }
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    print(
        String(
            format: "{\"issued\":%d,\"seconds\":%.3f,\"per_second\":%.1f,\"pem_bytes\":%d}", count, seconds,
            Double(count) / seconds, bytes))
}

/// swift-crypto's own ceiling for what an issuance must do: one P-256 verify and one sign of a SHA-256 digest.
func ecdsaBenchmark(count: Int) throws {
    let key = P256.Signing.PrivateKey()
    let message = [UInt8](repeating: 0x5a, count: 300)
    let signatures = try (0..<count).map { _ in try key.signature(for: message) }
    let clock = ContinuousClock()
    var valid = 0
    let elapsed = try clock.measure {
        for index in 0..<count {
            if key.publicKey.isValidSignature(signatures[index], for: message) { valid += 1 }
            _ = try key.signature(for: message)
        }
    }
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    guard valid == count else { throw CocoaError(.coderInvalidValue) }
    print(
        String(
            format: "{\"pairs\":%d,\"seconds\":%.3f,\"per_second\":%.1f}", count, seconds, Double(count) / seconds))
}

let arguments = CommandLine.arguments
switch arguments.dropFirst().first {
case "issuance":
    try issuanceBenchmark(count: arguments.count > 2 ? Int(arguments[2]) ?? 2000 : 2000)
case "ecdsa":
    try ecdsaBenchmark(count: arguments.count > 2 ? Int(arguments[2]) ?? 2000 : 2000)
default:
    FileHandle.standardError.write(Data("usage: muster-bench issuance|ecdsa [COUNT]\n".utf8))
    exit(2)
}
