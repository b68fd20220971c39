import CGRPCCore
import MusterConcurrency
import MusterIdentity

/// A PEM certificate chain (leaf first) and its PEM private key.
public struct CertifiedKey: Sendable, Equatable {
    public var certificateChainPEM: String
    public var privateKeyPEM: String

    public init(certificateChainPEM: String, privateKeyPEM: String) {
        self.certificateChainPEM = certificateChainPEM
        self.privateKeyPEM = privateKeyPEM
    }
}

/// A server's TLS identity and the roots of the trust domain it verifies clients with; `update` takes effect at
/// the next handshake. Every client chain is checked twice: by OpenSSL during the handshake, then by Muster's
/// `SVIDVerifier` on the same roots, whose validated path is what policies see.
public final class ServerCertificates: Sendable {
    struct Current: Sendable {
        var generation: UInt64
        var identity: CertifiedKey
        var trustRootsPEM: String?
        var verifier: SVIDVerifier?
    }

    public let trustDomain: String
    private let state: LockedValue<Current>

    public init(identity: CertifiedKey, trustRootsPEM: String?, trustDomain: String) {
        self.trustDomain = trustDomain
        state = LockedValue(
            Current(
                generation: 1, identity: identity, trustRootsPEM: trustRootsPEM,
                verifier: Self.verifier(trustRootsPEM, trustDomain: trustDomain)))
    }

    /// Replaces the identity and/or the trust roots; connections already open keep what they negotiated.
    public func update(identity: CertifiedKey? = nil, trustRootsPEM: String? = nil) {
        let verifier = trustRootsPEM.map { Self.verifier($0, trustDomain: trustDomain) }
        state.withLock { state in
            if let identity { state.identity = identity }
            if let trustRootsPEM, let verifier {
                state.trustRootsPEM = trustRootsPEM
                state.verifier = verifier
            }
            state.generation += 1
        }
    }

    var current: Current { state.withLock { $0 } }

    private static func verifier(_ pem: String?, trustDomain: String) -> SVIDVerifier? {
        guard let pem, let bundle = try? TrustBundle(trustDomain: trustDomain, pem: pem), !bundle.roots.isEmpty else {
            return nil
        }
        return SVIDVerifier(trustDomain: trustDomain, roots: bundle.roots)
    }
}

/// Whether a TLS server asks its clients for certificates.
public enum ClientCertificatePolicy: Sendable {
    /// No client certificates.
    case none
    /// Verified against the trust roots if presented; a client without one may still connect (join-token attestation).
    case optional
    /// Every client presents a certificate that verifies against the trust roots.
    case required

    var coreValue: grpc_ssl_client_certificate_request_type {
        switch self {
        case .none: GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
        case .optional: GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY
        case .required: GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
        }
    }
}

/// How a server secures its port.
public enum ServerSecurity: Sendable {
    case insecure
    case tls(ServerCertificates, clientCertificates: ClientCertificatePolicy)
}

/// Hands gRPC core the current certificates whenever they changed since the last handshake.
/// One per server, kept alive by the server for as long as its credentials may call back.
final class CertificateFetcher: Sendable {
    let certificates: ServerCertificates
    private let served = LockedValue<UInt64>(0)

    init(certificates: ServerCertificates) {
        self.certificates = certificates
    }

    func fetch(into config: UnsafeMutablePointer<OpaquePointer?>) -> grpc_ssl_certificate_config_reload_status {
        let current = certificates.current
        let changed = served.withLock { served in
            defer { served = current.generation }
            return served != current.generation
        }
        guard changed else { return GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_UNCHANGED }
        let created: OpaquePointer? = current.identity.privateKeyPEM.withCString { key in
            current.identity.certificateChainPEM.withCString { chain in
                var pair = grpc_ssl_pem_key_cert_pair(private_key: key, cert_chain: chain)
                if let roots = current.trustRootsPEM {
                    return roots.withCString { grpc_ssl_server_certificate_config_create($0, &pair, 1) }
                }
                return grpc_ssl_server_certificate_config_create(nil, &pair, 1)
            }
        }
        guard let created else {
            served.withLock { $0 = 0 }
            return GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_FAIL
        }
        config.pointee = created
        return GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_NEW
    }

    /// Server credentials that call back into `fetcher` at each handshake.
    static func makeCredentials(_ fetcher: CertificateFetcher, policy: ClientCertificatePolicy) -> OpaquePointer? {
        let userData = Unmanaged.passUnretained(fetcher).toOpaque()
        let callback: grpc_ssl_server_certificate_config_callback = { userData, config in
            guard let userData, let config else { return GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_FAIL }
            return Unmanaged<CertificateFetcher>.fromOpaque(userData).takeUnretainedValue().fetch(into: config)
        }
        guard
            let options = grpc_ssl_server_credentials_create_options_using_config_fetcher(
                policy.coreValue, callback, userData)
        else {
            return nil
        }
        return grpc_ssl_server_credentials_create_with_options(options)
    }
}
