import CGRPCCore
import Foundation
import MusterIdentity
import X509

/// How a client decides to trust a server it has never met.
public enum ServerTrust: Sendable {
    /// The server's chain must verify against these PEM roots (the trust bundle).
    case bundle(rootsPEM: String)
    /// First contact: a CA in the server's presented chain must have this `sha256:` SPKI pin,
    /// and the chain must verify up to it. Never trust-on-first-use.
    case pin(String)
}

/// TLS for a client: how it trusts the server, which server identities it accepts, and its own SVID for mTLS.
public struct ClientTLS: Sendable {
    public var trust: ServerTrust
    /// Which server SPIFFE IDs to accept (verified by SPIFFE ID, not hostname).
    public var serverPolicy: PeerPolicy
    public var identity: CertifiedKey?

    public init(trust: ServerTrust, serverPolicy: PeerPolicy, identity: CertifiedKey? = nil) {
        self.trust = trust
        self.serverPolicy = serverPolicy
        self.identity = identity
    }
}

/// How a channel secures its connections.
public enum ChannelSecurity: Sendable {
    case insecure
    case tls(ClientTLS)
}

/// Checks a server's presented chain after the handshake: pin (if pinned), then SPIFFE ID policy.
final class ServerChainVerifier: Sendable {
    let tls: ClientTLS

    init(tls: ClientTLS) { self.tls = tls }

    /// nil when the server is acceptable, else why not.
    func check(chainPEM: String?) -> String? {
        guard let chainPEM else { return "the server presented no certificate" }
        let peer: PeerIdentity
        do {
            peer = try PeerIdentity(pemChain: chainPEM)
        } catch {
            return "server certificate rejected: \(error.message)"
        }
        if case .pin(let pin) = tls.trust, let problem = Self.checkPinned(peer.chain, pin: pin.lowercased()) {
            return problem
        }
        return tls.serverPolicy.decide(peer).map { "server identity rejected: \($0.message)" }
    }

    /// Walks the chain from the leaf to the first certificate with the pinned key, checking each signature and validity.
    static func checkPinned(_ chain: [Certificate], pin: String, now: Date = Date()) -> String? {
        guard let anchor = chain.firstIndex(where: { CAPin.of($0) == pin }) else {
            return "no certificate in the server's chain matches the CA pin \(pin)"
        }
        guard anchor > 0 else { return "the pinned key is the server's own leaf, not a CA" }
        for index in 0...anchor {
            let certificate = chain[index]
            guard certificate.notValidBefore <= now, now <= certificate.notValidAfter else {
                return "certificate \(index) of the server's chain is outside its validity period"
            }
            guard index < anchor else { break }
            let issuer = chain[index + 1]
            guard let constraints = try? issuer.extensions.basicConstraints, case .isCertificateAuthority = constraints else {
                return "certificate \(index + 1) of the server's chain is not a CA"
            }
            guard issuer.publicKey.isValidSignature(certificate.signature, for: certificate) else {
                return "certificate \(index) of the server's chain is not signed by the next one"
            }
        }
        return nil
    }
}

extension ChannelSecurity {
    /// gRPC core channel credentials for this security (caller releases).
    func makeCoreCredentials() -> OpaquePointer? {
        switch self {
        case .insecure:
            return grpc_insecure_credentials_create()
        case .tls(let tls):
            return Self.makeTLSCredentials(tls)
        }
    }

    private static func makeTLSCredentials(_ tls: ClientTLS) -> OpaquePointer? {
        let options = grpc_tls_credentials_options_create()!
        var roots: String?
        if case .bundle(let pem) = tls.trust { roots = pem }
        if roots != nil || tls.identity != nil {
            var pairs: OpaquePointer?
            if let identity = tls.identity {
                pairs = grpc_tls_identity_pairs_create()
                grpc_tls_identity_pairs_add_pair(pairs, identity.privateKeyPEM, identity.certificateChainPEM)
            }
            let provider = grpc_tls_certificate_provider_static_data_create(roots, pairs)
            grpc_tls_credentials_options_set_certificate_provider(options, provider)
            grpc_tls_certificate_provider_release(provider)
            if roots != nil { grpc_tls_credentials_options_watch_root_certs(options) }
            if tls.identity != nil { grpc_tls_credentials_options_watch_identity_key_cert_pairs(options) }
        }
        // With a bundle, gRPC core checks the chain against it; with a pin, our verifier does.
        grpc_tls_credentials_options_set_verify_server_cert(options, roots != nil ? 1 : 0)
        grpc_tls_credentials_options_set_check_call_host(options, 0)
        let verifier = ExternalVerifier.make(ServerChainVerifier(tls: tls))
        grpc_tls_credentials_options_set_certificate_verifier(options, verifier)
        grpc_tls_certificate_verifier_release(verifier)
        return grpc_tls_credentials_create(options)
    }
}

/// Bridges gRPC core's external certificate-verifier callbacks to a `ServerChainVerifier`.
enum ExternalVerifier {
    /// Owns the C struct core calls through; freed by core's `destruct` callback.
    final class Box {
        let verifier: ServerChainVerifier
        let external: UnsafeMutablePointer<grpc_tls_certificate_verifier_external>
        init(verifier: ServerChainVerifier, external: UnsafeMutablePointer<grpc_tls_certificate_verifier_external>) {
            self.verifier = verifier
            self.external = external
        }
    }

    static func make(_ verifier: ServerChainVerifier) -> OpaquePointer? {
        let external = UnsafeMutablePointer<grpc_tls_certificate_verifier_external>.allocate(capacity: 1)
        let box = Box(verifier: verifier, external: external)
        external.initialize(to: grpc_tls_certificate_verifier_external(
            user_data: Unmanaged.passRetained(box).toOpaque(),
            verify: { userData, request, _, _, syncStatus, syncErrorDetails in
                let box = Unmanaged<Box>.fromOpaque(userData!).takeUnretainedValue()
                let info = request?.pointee.peer_info
                let chain = (info?.peer_cert_full_chain ?? info?.peer_cert).map { String(cString: $0) }
                if let problem = box.verifier.check(chainPEM: chain) {
                    syncStatus?.pointee = GRPC_STATUS_UNAUTHENTICATED
                    syncErrorDetails?.pointee = gpr_strdup(problem)
                } else {
                    syncStatus?.pointee = GRPC_STATUS_OK
                }
                return 1
            },
            cancel: { _, _ in },
            destruct: { userData in
                guard let userData else { return }
                let box = Unmanaged<Box>.fromOpaque(userData).takeRetainedValue()
                box.external.deinitialize(count: 1)
                box.external.deallocate()
            }
        ))
        return grpc_tls_certificate_verifier_external_create(external)
    }
}
