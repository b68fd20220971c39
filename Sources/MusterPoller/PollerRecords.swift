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
