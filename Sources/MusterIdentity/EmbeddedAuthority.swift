import Foundation
import X509

/// The identity authority on Core's own root CA (the embedded default): no other service needed.
public actor EmbeddedAuthority: IdentityAuthority {
    public nonisolated let trustDomain: String
    private let authority: CertificateAuthority
    private var trustBundle: TrustBundle
    private var entries: [String: RegistrationEntry] = [:]
    public let leafTTL: TimeInterval
    public let downstreamCATTL: TimeInterval

    /// Loads or creates the root CA under `directory`.
    public init(directory: String, trustDomain: String, leafTTL: TimeInterval = 3600, downstreamCATTL: TimeInterval = 24 * 3600) throws {
        _ = try SPIFFEID(trustDomain: trustDomain, segments: [])
        let (authority, bundle) = try RootCAStore(directory: directory).loadOrCreate(trustDomain: trustDomain)
        self.trustDomain = trustDomain
        self.authority = authority
        self.trustBundle = bundle
        self.leafTTL = leafTTL
        self.downstreamCATTL = downstreamCATTL
    }

    public func createJoinToken(ttl: TimeInterval = JoinToken.defaultTTL) throws -> (token: JoinToken, expiresAt: Date) {
        try JoinToken.validateTTL(ttl)
        return (JoinToken.generate(), Date() + ttl)
    }

    public func createDownstreamEntry(pollerID: SPIFFEID, selectors: [String]) throws -> RegistrationEntry {
        guard pollerID.trustDomain == trustDomain else {
            throw IdentityError(.wrongTrustDomain, "\(pollerID) is not in trust domain \(trustDomain)")
        }
        let entry = RegistrationEntry(id: UUID().uuidString.lowercased(), spiffeID: pollerID, selectors: selectors, downstream: true, x509SVIDTTL: leafTTL)
        entries[entry.id] = entry
        return entry
    }

    public func deleteEntry(id: String) throws {
        guard entries.removeValue(forKey: id) != nil else {
            throw IdentityError(.entryNotFound, "no registration entry \(id)")
        }
    }

    public func issuePollerSVID(entryID: String, csrDER: [UInt8], dnsNames: [String] = [], ipAddresses: [String] = []) throws -> IssuedChain {
        let entry = try entry(entryID)
        let key = try CSRCheck.publicKey(fromDER: csrDER, purpose: .leaf)
        let leaf = try authority.issueLeaf(spiffeID: entry.spiffeID, publicKey: key, dnsNames: dnsNames, ipAddresses: ipAddresses, lifetime: entry.x509SVIDTTL)
        return IssuedChain(chain: authority.presentedChain(for: leaf), bundle: trustBundle)
    }

    public func issueDownstreamCA(entryID: String, csrDER: [UInt8]) throws -> IssuedChain {
        let entry = try entry(entryID)
        guard entry.downstream else {
            throw IdentityError(.entryNotFound, "entry \(entryID) is not a downstream entry")
        }
        let key = try CSRCheck.publicKey(fromDER: csrDER, purpose: .certificateAuthority)
        let ca = try authority.issueDownstreamCA(pollerID: entry.spiffeID, publicKey: key, lifetime: downstreamCATTL)
        return IssuedChain(chain: authority.presentedChain(for: ca), bundle: trustBundle)
    }

    public func bundle() -> TrustBundle { trustBundle }

    /// The root CA itself, for Core's own serving SVID.
    public var rootAuthority: CertificateAuthority { authority }

    private func entry(_ id: String) throws(IdentityError) -> RegistrationEntry {
        guard let entry = entries[id] else { throw IdentityError(.entryNotFound, "no registration entry \(id)") }
        return entry
    }
}
