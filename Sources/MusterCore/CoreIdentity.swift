import Foundation
import MusterIdentity
import X509

/// Core's identity material: trust domain, root CA, bundle, the CA pin packages carry, and where pollers dial.
public struct CoreIdentity: Sendable {
    public let trustDomain: String
    public let authority: CertificateAuthority
    public let bundle: TrustBundle
    public let caPin: String
    /// host:port of Core's gRPC endpoint as pollers reach it.
    public let advertise: String

    public init(trustDomain: String, authority: CertificateAuthority, bundle: TrustBundle, advertise: String) {
        self.trustDomain = trustDomain
        self.authority = authority
        self.bundle = bundle
        self.caPin = CAPin.of(authority.certificate)
        self.advertise = advertise
    }
}
