import Foundation
import MusterIdentity
import X509

/// Core's identity material: trust domain, the identity authority that issues every certificate, the bundle,
/// the CA pin packages carry, and where pollers dial.
public struct CoreIdentity: Sendable {
    public let trustDomain: String
    public let authority: any IdentityAuthority
    public let bundle: TrustBundle
    public let caPin: String
    /// host:port of Core's gRPC endpoint as pollers reach it.
    public let advertise: String

    public init(authority: any IdentityAuthority, bundle: TrustBundle, advertise: String) {
        self.trustDomain = authority.trustDomain
        self.authority = authority
        self.bundle = bundle
        self.caPin = bundle.roots.first.map(CAPin.of) ?? ""
        self.advertise = advertise
    }
}
