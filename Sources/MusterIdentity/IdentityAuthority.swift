import Foundation
import X509

/// A registration entry, shaped after SPIRE's entry.v1 Entry: who may be issued which SPIFFE ID.
public struct RegistrationEntry: Sendable, Equatable {
    public let id: String
    public let spiffeID: SPIFFEID
    public let selectors: [String]
    /// True for a poller: it may hold a downstream CA (SPIRE's `downstream: true`).
    public let downstream: Bool
    public let x509SVIDTTL: TimeInterval

    public init(id: String, spiffeID: SPIFFEID, selectors: [String], downstream: Bool, x509SVIDTTL: TimeInterval) {
        self.id = id
        self.spiffeID = spiffeID
        self.selectors = selectors
        self.downstream = downstream
        self.x509SVIDTTL = x509SVIDTTL
    }
}

/// One entry to create (entry.v1 BatchCreateEntry's item).
public struct EntryRequest: Sendable {
    public var spiffeID: SPIFFEID
    public var selectors: [String]
    public var downstream: Bool
    public var x509SVIDTTL: TimeInterval

    public init(
        spiffeID: SPIFFEID, selectors: [String] = [], downstream: Bool = false, x509SVIDTTL: TimeInterval = 3600
    ) {
        self.spiffeID = spiffeID
        self.selectors = selectors
        self.downstream = downstream
        self.x509SVIDTTL = x509SVIDTTL
    }
}

/// One certificate to sign (svid.v1 MintX509SVID / NewDownstreamX509CA): the CSR supplies only the public key
/// and its proof of possession; the identity, names and lifetime come from Core's record.
public struct SVIDRequest: Sendable {
    public var spiffeID: SPIFFEID
    public var csrDER: [UInt8]
    public var dnsNames: [String]
    public var ipAddresses: [String]
    public var ttl: TimeInterval

    public init(
        spiffeID: SPIFFEID, csrDER: [UInt8], dnsNames: [String] = [], ipAddresses: [String] = [], ttl: TimeInterval
    ) {
        self.spiffeID = spiffeID
        self.csrDER = csrDER
        self.dnsNames = dnsNames
        self.ipAddresses = ipAddresses
        self.ttl = ttl
    }
}

/// What an issuance returns: the certificate chain to present (leaf or CA first) and the bundle to trust.
public struct IssuedChain: Sendable {
    public let chain: [Certificate]
    public let bundle: TrustBundle
    public var certificate: Certificate { chain[0] }

    public init(chain: [Certificate], bundle: TrustBundle) {
        self.chain = chain
        self.bundle = bundle
    }
}

/// Core's identity authority: every certificate Core issues (its own SVID, pollers' SVIDs and downstream CAs,
/// their renewals) and every join token it creates goes through this seam. It is shaped after SPIRE's Server
/// API — agent.v1 CreateJoinToken, entry.v1 BatchCreateEntry/BatchDeleteEntry (per-item results, entry IDs
/// returned), svid.v1 MintX509SVID/NewDownstreamX509CA, bundle.v1 GetBundle — so a SPIRE-backed authority can
/// replace `EmbeddedAuthority` without touching the domain. Failures are `IdentityError`s with codes.
public protocol IdentityAuthority: Sendable {
    var trustDomain: String { get }

    /// A new single-use join token with `ttl` (15 min by default, 24 h at most).
    func createJoinToken(ttl: TimeInterval) async throws -> (token: JoinToken, expiresAt: Date)

    /// Creates registration entries; one result per request, in order (a refused item does not stop the rest).
    func batchCreateEntries(_ requests: [EntryRequest]) async throws -> [Result<RegistrationEntry, IdentityError>]

    /// Deletes entries by ID; one result per ID, in order. Nothing more is issued for a deleted entry.
    func batchDeleteEntries(ids: [String]) async throws -> [Result<String, IdentityError>]

    /// Signs a leaf X.509-SVID (DNS/IP names only for serving certificates Core asks for).
    func mintX509SVID(_ request: SVIDRequest) async throws -> IssuedChain

    /// Signs a poller's downstream CA: `pathLen=0`, name-constrained to the trust domain's URIs.
    func newDownstreamX509CA(_ request: SVIDRequest) async throws -> IssuedChain

    /// The current trust bundle.
    func bundle() async throws -> TrustBundle
}
