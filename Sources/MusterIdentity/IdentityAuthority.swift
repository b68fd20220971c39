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
}

/// What an issuance returns: the certificate chain to present (leaf or CA first) and the bundle to trust.
public struct IssuedChain: Sendable {
    public let chain: [Certificate]
    public let bundle: TrustBundle
    public var certificate: Certificate { chain[0] }
}

/// Core's identity authority, shaped after SPIRE's Server API (agent.v1 CreateJoinToken; entry.v1
/// BatchCreateEntry with `downstream: true`, BatchDeleteEntry; svid.v1 NewDownstreamX509CA), so an
/// embedded CA and an external SPIRE server are interchangeable behind it.
public protocol IdentityAuthority: Sendable {
    var trustDomain: String { get }

    /// A new single-use join token with `ttl` (15 min by default, 24 h at most).
    func createJoinToken(ttl: TimeInterval) async throws -> (token: JoinToken, expiresAt: Date)

    /// Registers a poller: the entry that allows its SVID and its downstream CA.
    func createDownstreamEntry(pollerID: SPIFFEID, selectors: [String]) async throws -> RegistrationEntry

    /// Removes an entry; nothing more is issued for it.
    func deleteEntry(id: String) async throws

    /// Issues the poller's SVID from a CSR (only its public key is used), with DNS/IP SANs for serving.
    func issuePollerSVID(entryID: String, csrDER: [UInt8], dnsNames: [String], ipAddresses: [String]) async throws -> IssuedChain

    /// Issues the poller's downstream CA from a CSR (svid.v1 NewDownstreamX509CA).
    func issueDownstreamCA(entryID: String, csrDER: [UInt8]) async throws -> IssuedChain

    /// The current trust bundle.
    func bundle() async throws -> TrustBundle
}
