import Foundation
import MusterIdentity
import MusterProto
import SwiftProtobuf

/// libFuzzer entry: the request message of every public gRPC method (the first byte picks the method), decoded as
/// the server decodes it, then put through the checks the handler runs before anything else.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRequests(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    guard count > 0 else { return 0 }
    let raw = UnsafeRawBufferPointer(start: start, count: count)
    let body = Array(raw.dropFirst())
    switch raw[0] % 9 {
    case 0:  // CoreOnboarding.AttestPoller
        guard let request = decode(Muster_Onboarding_V1_AttestPollerRequest.self, body) else { return 0 }
        _ = try? JoinToken(parsing: request.joinToken)
        _ = try? CSRCheck.publicKey(fromDER: Array(request.svidCsr), purpose: .leaf)
        _ = try? CSRCheck.publicKey(fromDER: Array(request.caCsr), purpose: .certificateAuthority)
        _ = try? HostPort.validateAdvertised(request.advertiseAddress)
    case 1:  // CoreOnboarding.RenewPoller
        guard let request = decode(Muster_Onboarding_V1_RenewPollerRequest.self, body) else { return 0 }
        _ = try? CSRCheck.publicKey(fromDER: Array(request.svidCsr), purpose: .leaf)
        _ = try? CSRCheck.publicKey(fromDER: Array(request.caCsr), purpose: .certificateAuthority)
    case 2:  // CoreOnboarding.WatchPackages
        _ = decode(Muster_Onboarding_V1_WatchPackagesRequest.self, body)
    case 3:  // CoreOnboarding.ReportActivations
        guard let request = decode(Muster_Onboarding_V1_ReportActivationsRequest.self, body) else { return 0 }
        for activation in request.activations.prefix(500) {
            _ = try? SPIFFEID(parsing: activation.spiffeID)
            _ = TextRules.printable(activation.sourceAddress, limit: 64)
        }
        for refusal in request.refusals.prefix(500) { _ = TextRules.printable(refusal.reason, limit: 200) }
    case 4:  // EdgeOnboarding.Join
        guard let request = decode(Muster_Onboarding_V1_JoinRequest.self, body) else { return 0 }
        _ = try? JoinToken(parsing: request.joinToken)
        _ = try? CSRCheck.publicKey(fromDER: Array(request.csr), purpose: .leaf)
    case 5:  // EdgeOnboarding.Renew
        guard let request = decode(Muster_Onboarding_V1_RenewRequest.self, body) else { return 0 }
        _ = try? CSRCheck.publicKey(fromDER: Array(request.csr), purpose: .leaf)
    case 6:  // EdgeOnboarding.GetBundle
        _ = decode(Muster_Onboarding_V1_GetBundleRequest.self, body)
    case 7:  // grpc.health.v1.Health.Check / Watch
        _ = decode(Grpc_Health_V1_HealthCheckRequest.self, body)
    default:  // what Core streams to a poller (the poller's input from WatchPackages)
        guard let update = decode(Muster_Onboarding_V1_PackageUpdate.self, body) else { return 0 }
        if case .pending(let package) = update.change { _ = try? SPIFFEID(parsing: package.spiffeID) }
    }
    return 0
}

/// Decodes like the server does; a message that decodes must encode and decode to itself.
func decode<M: Message & Equatable>(_ type: M.Type, _ bytes: [UInt8]) -> M? {
    guard let message = try? M(serializedBytes: bytes) else { return nil }
    let again: [UInt8]? = try? message.serializedBytes()
    precondition(again.flatMap { try? M(serializedBytes: $0) } == message, "\(M.self) does not round-trip")
    return message
}
