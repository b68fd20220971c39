import Foundation
import X509

/// The identity authority on Core's own root CA (the embedded default): no other service needed.
///
/// Its registration entries are Core's package rows: Core's store keeps each entry's ID beside the package
/// (across restarts and replicas), so this authority mints the IDs and checks each request, but holds no
/// state of its own beyond the root. It signs only IDs of its trust domain: leaves for Core and pollers, downstream CAs for pollers.
public struct EmbeddedAuthority: IdentityAuthority {
    public let trustDomain: String
    private let root: CertificateAuthority
    private let trustBundle: TrustBundle

    /// Loads or creates the root CA under `directory`.
    public init(directory: String, trustDomain: String) throws {
        _ = try SPIFFEID(trustDomain: trustDomain, segments: [])
        let (authority, bundle) = try RootCAStore(directory: directory).loadOrCreate(trustDomain: trustDomain)
        self.init(root: authority, bundle: bundle)
    }

    /// An authority over a root already in hand (tests, tools).
    public init(root: CertificateAuthority, bundle: TrustBundle) {
        self.trustDomain = bundle.trustDomain
        self.root = root
        self.trustBundle = bundle
    }

    public func createJoinToken(ttl: TimeInterval = JoinToken.defaultTTL) throws -> (token: JoinToken, expiresAt: Date)
    {
        try JoinToken.validateTTL(ttl)
        return (JoinToken.generate(), Date() + ttl)
    }

    public func batchCreateEntries(_ requests: [EntryRequest]) -> [Result<RegistrationEntry, IdentityError>] {
        requests.map { request in
            do throws(IdentityError) {
                // Any Muster ID may have an entry (agents' SVIDs come from their poller's CA); only pollers downstream.
                try checkTrustDomain(request.spiffeID)
                guard let parsed = MusterID(request.spiffeID) else {
                    throw IdentityError(.notAnSVID, "\(request.spiffeID) is not a Muster ID")
                }
                if request.downstream, case .poller = parsed {
                } else if request.downstream {
                    throw IdentityError(
                        .outsidePollerScope, "only a poller may hold a downstream CA, not \(request.spiffeID)")
                }
                try checkLifetime(request.x509SVIDTTL)
                return .success(
                    RegistrationEntry(
                        id: UUID().uuidString.lowercased(), spiffeID: request.spiffeID, selectors: request.selectors,
                        downstream: request.downstream, x509SVIDTTL: request.x509SVIDTTL
                    ))
            } catch {
                return .failure(error)
            }
        }
    }

    /// The entry lives in Core's package row, which the revoking transaction already cleared, so any ID it held
    /// (entries of packages made before this authority minted IDs read `entry-<package id>`) is gone; an empty
    /// ID names no entry.
    public func batchDeleteEntries(ids: [String]) -> [Result<String, IdentityError>] {
        ids.map { id in
            id.isEmpty ? .failure(IdentityError(.entryNotFound, "an empty entry ID names no entry")) : .success(id)
        }
    }

    public func mintX509SVID(_ request: SVIDRequest) throws -> IssuedChain {
        try check(request.spiffeID, downstream: false)
        try checkLifetime(request.ttl)
        let key = try CSRCheck.checkedKey(fromDER: request.csrDER, purpose: .leaf)
        let leaf = try root.issueLeaf(
            spiffeID: request.spiffeID, key: key, dnsNames: request.dnsNames, ipAddresses: request.ipAddresses,
            lifetime: request.ttl
        )
        return IssuedChain(chain: root.presentedChain(for: leaf), bundle: trustBundle)
    }

    public func newDownstreamX509CA(_ request: SVIDRequest) throws -> IssuedChain {
        try check(request.spiffeID, downstream: true)
        try checkLifetime(request.ttl)
        guard request.dnsNames.isEmpty, request.ipAddresses.isEmpty else {
            throw IdentityError(.outsidePollerScope, "a downstream CA carries no DNS names or IP addresses")
        }
        let key = try CSRCheck.publicKey(fromDER: request.csrDER, purpose: .certificateAuthority)
        let ca = try root.issueDownstreamCA(pollerID: request.spiffeID, publicKey: key, lifetime: request.ttl)
        return IssuedChain(chain: root.presentedChain(for: ca), bundle: trustBundle)
    }

    public func bundle() -> TrustBundle { trustBundle }

    private func checkTrustDomain(_ id: SPIFFEID) throws(IdentityError) {
        guard id.trustDomain == trustDomain else {
            throw IdentityError(.wrongTrustDomain, "\(id) is not in trust domain \(trustDomain)")
        }
    }

    /// What the root may sign for `id`.
    private func check(_ id: SPIFFEID, downstream: Bool) throws(IdentityError) {
        try checkTrustDomain(id)
        // The root signs leaves for Core and pollers only (agents and checkers get theirs from their poller's
        // CA) and downstream CAs for pollers only.
        switch MusterID(id) {
        case .poller: return
        case .core where !downstream: return
        case nil: throw IdentityError(.notAnSVID, "\(id) is not a Muster ID")
        default:
            throw IdentityError(
                .outsidePollerScope,
                downstream
                    ? "only a poller may hold a downstream CA, not \(id)"
                    : "the root issues SVIDs to Core and pollers only, not \(id)")
        }
    }

    /// Lifetimes Core asks for: positive and at most a year (the root outlives them).
    private func checkLifetime(_ ttl: TimeInterval) throws(IdentityError) {
        guard ttl > 0, ttl <= 366 * 86_400 else {
            throw IdentityError(.badLifetime, "a certificate lifetime must be positive and at most a year")
        }
    }
}
