import CGRPCCore
import Dispatch
import Foundation
import MusterConcurrency
import MusterIdentity
import Synchronization
import X509

/// How a client decides to trust a server it has never met.
public enum ServerTrust: Sendable {
    /// The server's chain must verify against these PEM roots (the trust bundle).
    case bundle(rootsPEM: String)
    /// First contact: the CA in the server's presented chain with this `sha256:` SPKI pin becomes the one trust
    /// anchor, and the chain must verify up to it like a bundle chain. Never trust-on-first-use.
    case pin(String)
}

/// TLS for a client: how it trusts the server, which server identities it accepts, and its own SVID for mTLS.
public struct ClientTLS: Sendable {
    public var trust: ServerTrust
    /// The trust domain the server's SVID must belong to; nil: the one its leaf names, still anchored by the
    /// bundle or the pinned root (an agent joining by name learns the trust domain from the pinned root's chain).
    public var trustDomain: String?
    /// Which server SPIFFE IDs to accept (verified by SPIFFE ID, not hostname), applied to the verified chain.
    public var serverPolicy: PeerPolicy
    public var identity: CertifiedKey?

    public init(trust: ServerTrust, trustDomain: String?, serverPolicy: PeerPolicy, identity: CertifiedKey? = nil) {
        self.trust = trust
        self.trustDomain = trustDomain
        self.serverPolicy = serverPolicy
        self.identity = identity
    }

    /// A client that accepts exactly the server `id`, from an SVID the root signed itself (Core, a poller).
    public init(trust: ServerTrust, server id: SPIFFEID, identity: CertifiedKey? = nil) {
        self.init(
            trust: trust, trustDomain: id.trustDomain, serverPolicy: .exactly(id, issuedByRoot: true),
            identity: identity)
    }
}

/// How a channel secures its connections.
public enum ChannelSecurity: Sendable {
    case insecure
    case tls(ClientTLS)
}

/// Checks a server's chain after the handshake with the one verifier (`SVIDVerifier`: X.509-SVID rules,
/// RFC 5280 path validation to the bundle or the pinned root, Muster's path rule), then the ID policy on
/// the path that validated.
final class ServerChainVerifier: Sendable {
    let tls: ClientTLS
    private let roots: [Certificate]

    init(tls: ClientTLS) {
        self.tls = tls
        if case .bundle(let pem) = tls.trust {
            roots = (try? TrustBundle(trustDomain: tls.trustDomain ?? "", pem: pem))?.roots ?? []
        } else {
            roots = []
        }
    }

    /// nil when the server is acceptable, else why not.
    func check(chainPEM: String?, now: Date = Date()) async -> String? {
        guard let chainPEM else { return "the server presented no certificate" }
        let verified: VerifiedSVID
        do {
            let chain = try PeerIdentity.presented(pemChain: chainPEM)
            let trustDomain = try tls.trustDomain ?? SVIDVerifier.checkLeaf(chain[0]).trustDomain
            switch tls.trust {
            case .bundle:
                verified = try await SVIDVerifier(trustDomain: trustDomain, roots: roots).verify(chain: chain, at: now)
            case .pin(let pin):
                verified = try await SVIDVerifier.verifyPinned(
                    chain: chain, pin: pin.lowercased(), trustDomain: trustDomain, at: now)
            }
        } catch let error as RPCError {
            return "server certificate rejected: \(error.message)"
        } catch let error as IdentityError {
            return "server certificate rejected: \(error.message)"
        } catch {
            return "server certificate rejected"
        }
        return tls.serverPolicy.decide(PeerIdentity(verified: verified)).map {
            "server identity rejected: \($0.message)"
        }
    }

    /// `check` for gRPC core's synchronous verifier callback. Core may run the handshake inline on whatever thread
    /// drove it, a thread of Swift's cooperative pool included, so the verification runs on its own executor
    /// (`VerificationExecutor`), never on that pool: the waiting thread cannot starve the work it waits for.
    func checkBlocking(chainPEM: String?) -> String? {
        let result = LockedValue<String?>(nil)
        let done = DispatchSemaphore(value: 0)
        Task(executorPreference: VerificationExecutor.shared) { [self] in
            let problem = await check(chainPEM: chainPEM)
            result.withLock { $0 = problem }
            done.signal()
        }
        done.wait()
        return result.withLock { $0 }
    }
}

/// Runs certificate verifications on Dispatch's threads rather than Swift's cooperative pool (see `checkBlocking`).
final class VerificationExecutor: TaskExecutor {
    static let shared = VerificationExecutor()
    private let queue = DispatchQueue(label: "muster.grpc.verify", attributes: .concurrent)

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        queue.async { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
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
        /// Released here, acquired by each callback: core hands the box to its own threads through
        /// uninstrumented C, so ThreadSanitizer sees the hand-off only through this pair (as with tags).
        private let published = Atomic<Bool>(false)
        init(verifier: ServerChainVerifier, external: UnsafeMutablePointer<grpc_tls_certificate_verifier_external>) {
            self.verifier = verifier
            self.external = external
            published.store(true, ordering: .releasing)
        }

        /// The box as a callback on a core thread may use it.
        static func from(_ userData: UnsafeMutableRawPointer, taking: Bool = false) -> Box {
            let unmanaged = Unmanaged<Box>.fromOpaque(userData)
            let box = taking ? unmanaged.takeRetainedValue() : unmanaged.takeUnretainedValue()
            _ = box.published.load(ordering: .acquiring)
            return box
        }
    }

    static func make(_ verifier: ServerChainVerifier) -> OpaquePointer? {
        let external = UnsafeMutablePointer<grpc_tls_certificate_verifier_external>.allocate(capacity: 1)
        let box = Box(verifier: verifier, external: external)
        external.initialize(
            to: grpc_tls_certificate_verifier_external(
                user_data: Unmanaged.passRetained(box).toOpaque(),
                verify: { userData, request, _, _, syncStatus, syncErrorDetails in
                    let box = Box.from(userData!)
                    let info = request?.pointee.peer_info
                    let chain = (info?.peer_cert_full_chain ?? info?.peer_cert).map { String(cString: $0) }
                    if let problem = box.verifier.checkBlocking(chainPEM: chain) {
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
                    let box = Box.from(userData, taking: true)
                    box.external.deinitialize(count: 1)
                    box.external.deallocate()
                }
            ))
        return grpc_tls_certificate_verifier_external_create(external)
    }
}
