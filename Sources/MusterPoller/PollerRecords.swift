import Foundation

/// A package the poller holds for an agent or checker on its segment.
public struct CachedPackage: Codable, Sendable, Equatable {
    public var id: String
    public var componentType: String
    public var name: String
    public var spiffeID: String
    /// Hex SHA-256 of the join token; nil for a revocation that arrived before the package.
    public var tokenHash: String?
    public var expiresAt: Int64
    public var selectors: String
    /// `pending`, `redeemed` or `revoked`.
    public var state: String
    public var redeemedAt: Int64?
    public var revokedAt: Int64?

    enum CodingKeys: String, CodingKey {
        case id, name, selectors, state
        case componentType = "component_type"
        case spiffeID = "spiffe_id"
        case tokenHash = "token_hash"
        case expiresAt = "expires_at"
        case redeemedAt = "redeemed_at"
        case revokedAt = "revoked_at"
    }

    /// The Workload API selectors as Core gave them (stored as a JSON list); an unreadable list reads as none.
    public var selectorList: [String] {
        (try? JSONDecoder().decode([String].self, from: Data(selectors.utf8))) ?? []
    }
}

/// An activation waiting in the outbox for Core.
public struct PendingActivation: Codable, Sendable, Equatable {
    public var packageID: String
    public var spiffeID: String
    public var sourceAddress: String
    public var activatedAt: Int64
    public var serial: String

    enum CodingKeys: String, CodingKey {
        case serial
        case packageID = "package_id"
        case spiffeID = "spiffe_id"
        case sourceAddress = "source_address"
        case activatedAt = "activated_at"
    }
}

/// A refused join waiting in the outbox for Core's audit log.
public struct QueuedRefusal: Codable, Sendable, Equatable {
    public var id: Int64
    public var packageID: String
    public var reason: String
    public var sourceAddress: String
    public var at: Int64

    enum CodingKeys: String, CodingKey {
        case id, reason, at
        case packageID = "package_id"
        case sourceAddress = "source_address"
    }
}

/// A certificate the poller issued to an agent, as Renew looks it up.
public struct IssuedSVID: Codable, Sendable, Equatable {
    public var serial: String
    public var packageID: String
    public var spiffeID: String
    public var notAfter: Int64
    public var revokedAt: Int64?

    enum CodingKeys: String, CodingKey {
        case serial
        case packageID = "package_id"
        case spiffeID = "spiffe_id"
        case notAfter = "not_after"
        case revokedAt = "revoked_at"
    }
}

/// A self-enrollment request as the poller keeps it until its identity is collected.
public struct CachedEnrollment: Codable, Sendable, Equatable {
    public var id: String
    public var handleHash: String
    public var componentType: String
    public var requestedName: String
    /// JSON of the claimed facts, as relayed to Core.
    public var claimed: String
    /// PKCS#10 DER: its key is the only one an approval can give an identity to.
    public var csr: Data
    public var keyFingerprint: String
    public var sourceAddress: String
    public var receivedAt: Int64
    /// `pending`, `approved`, `activated`, `denied` or `expired`.
    public var state: String
    public var reason: String?
    public var packageID: String?

    enum CodingKeys: String, CodingKey {
        case id, claimed, csr, state, reason
        case handleHash = "handle_hash"
        case componentType = "component_type"
        case requestedName = "requested_name"
        case keyFingerprint = "key_fingerprint"
        case sourceAddress = "source_address"
        case receivedAt = "received_at"
        case packageID = "package_id"
    }
}
