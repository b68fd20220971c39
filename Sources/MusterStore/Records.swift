import Foundation

/// The component a package onboards.
public enum ComponentType: String, Codable, Sendable, CaseIterable {
    case poller, agent, checker
}

/// Where a package is in its lifecycle (DESIGN.md: Created → Delivered → Activated; Revoked; Expired).
public enum PackageStatus: String, Codable, Sendable, CaseIterable {
    case created, delivered, activated, expired, revoked

    /// States a package can still leave.
    public var isTerminal: Bool { self == .expired || self == .revoked }
    public static let live: [PackageStatus] = [.created, .delivered, .activated]
}

/// One onboarding package as stored. Timestamps are epoch milliseconds.
public struct PackageRecord: Codable, Sendable, Equatable {
    public var id: String
    public var name: String
    public var componentType: ComponentType
    public var site: String
    public var pollerName: String?
    public var spiffeID: String
    /// The SPIFFE ID while the package is live, NULL once terminal: a unique column, so two live
    /// packages can never claim one identity, even across Core replicas.
    public var activeSpiffeID: String?
    /// JSON array of `type:value` selectors.
    public var selectors: String
    public var tokenHash: String
    /// The clear join token sealed with AES-GCM; erased when the package is downloaded.
    public var tokenCiphertext: Data?
    public var entryID: String?
    public var ttlSeconds: Int64
    public var expiresAt: Int64
    public var status: PackageStatus
    public var createdBy: String
    public var createdAt: Int64
    public var deliveredAt: Int64?
    public var deliveredVia: String?
    public var downloadedAt: Int64?
    public var activatedAt: Int64?
    public var activatedFromIP: String?
    public var activatedSpiffeID: String?
    public var expiredAt: Int64?
    public var revokedAt: Int64?
    public var revokedBy: String?
    public var revokeReason: String?
    public var notes: String
    /// JSON object of free-form metadata.
    public var metadata: String

    public init(
        id: String,
        name: String,
        componentType: ComponentType,
        site: String,
        pollerName: String? = nil,
        spiffeID: String,
        activeSpiffeID: String? = nil,
        selectors: String,
        tokenHash: String,
        tokenCiphertext: Data? = nil,
        entryID: String? = nil,
        ttlSeconds: Int64,
        expiresAt: Int64,
        status: PackageStatus,
        createdBy: String,
        createdAt: Int64,
        deliveredAt: Int64? = nil,
        deliveredVia: String? = nil,
        downloadedAt: Int64? = nil,
        activatedAt: Int64? = nil,
        activatedFromIP: String? = nil,
        activatedSpiffeID: String? = nil,
        expiredAt: Int64? = nil,
        revokedAt: Int64? = nil,
        revokedBy: String? = nil,
        revokeReason: String? = nil,
        notes: String,
        metadata: String
    ) {
        self.id = id
        self.name = name
        self.componentType = componentType
        self.site = site
        self.pollerName = pollerName
        self.spiffeID = spiffeID
        self.activeSpiffeID = activeSpiffeID
        self.selectors = selectors
        self.tokenHash = tokenHash
        self.tokenCiphertext = tokenCiphertext
        self.entryID = entryID
        self.ttlSeconds = ttlSeconds
        self.expiresAt = expiresAt
        self.status = status
        self.createdBy = createdBy
        self.createdAt = createdAt
        self.deliveredAt = deliveredAt
        self.deliveredVia = deliveredVia
        self.downloadedAt = downloadedAt
        self.activatedAt = activatedAt
        self.activatedFromIP = activatedFromIP
        self.activatedSpiffeID = activatedSpiffeID
        self.expiredAt = expiredAt
        self.revokedAt = revokedAt
        self.revokedBy = revokedBy
        self.revokeReason = revokeReason
        self.notes = notes
        self.metadata = metadata
    }

    enum CodingKeys: String, CodingKey {
        case id, name, site, selectors, status, notes, metadata
        case componentType = "component_type"
        case pollerName = "poller_name"
        case spiffeID = "spiffe_id"
        case activeSpiffeID = "active_spiffe_id"
        case tokenHash = "token_hash"
        case tokenCiphertext = "token_ciphertext"
        case entryID = "entry_id"
        case ttlSeconds = "ttl_seconds"
        case expiresAt = "expires_at"
        case createdBy = "created_by"
        case createdAt = "created_at"
        case deliveredAt = "delivered_at"
        case deliveredVia = "delivered_via"
        case downloadedAt = "downloaded_at"
        case activatedAt = "activated_at"
        case activatedFromIP = "activated_from_ip"
        case activatedSpiffeID = "activated_spiffe_id"
        case expiredAt = "expired_at"
        case revokedAt = "revoked_at"
        case revokedBy = "revoked_by"
        case revokeReason = "revoke_reason"
    }

    /// Why a token of `package` cannot be redeemed for `componentType` now, or nil if it can.
    public static func redemptionRefusal(of package: PackageRecord?, componentType: ComponentType, at now: Int64)
        -> String?
    {
        guard let package else { return "unknown token" }
        if package.componentType != componentType {
            return "token belongs to another component type (\(package.componentType.rawValue))"
        }
        switch package.status {
        case .activated: return "token already used"
        case .revoked: return "package revoked"
        case .expired: return "package expired"
        case .created, .delivered: return package.expiresAt <= now ? "package expired" : nil
        }
    }

    public var selectorList: [String] {
        (try? JSONDecoder().decode([String].self, from: Data(selectors.utf8))) ?? []
    }
}

/// When a poller was heard from (Unix ms), and from which address.
public struct PollerContact: Sendable, Equatable {
    public let name: String
    public let at: Int64
    public let from: String?

    public init(name: String, at: Int64, from: String?) {
        self.name = name
        self.at = at
        self.from = from
    }
}

/// A poller Core knows of: created with its package, active once attested.
public struct PollerRecord: Codable, Sendable, Equatable {
    public var name: String
    public var spiffeID: String
    public var site: String
    public var packageID: String
    public var status: String
    public var advertiseAddress: String?
    public var lastContactAt: Int64?
    public var lastContactFrom: String?
    public var createdAt: Int64

    public init(
        name: String,
        spiffeID: String,
        site: String,
        packageID: String,
        status: String,
        advertiseAddress: String? = nil,
        lastContactAt: Int64? = nil,
        lastContactFrom: String? = nil,
        createdAt: Int64
    ) {
        self.name = name
        self.spiffeID = spiffeID
        self.site = site
        self.packageID = packageID
        self.status = status
        self.advertiseAddress = advertiseAddress
        self.lastContactAt = lastContactAt
        self.lastContactFrom = lastContactFrom
        self.createdAt = createdAt
    }

    enum CodingKeys: String, CodingKey {
        case name, site, status
        case spiffeID = "spiffe_id"
        case packageID = "package_id"
        case advertiseAddress = "advertise_address"
        case lastContactAt = "last_contact_at"
        case lastContactFrom = "last_contact_from"
        case createdAt = "created_at"
    }
}

/// An operator API token; only its SHA-256 hash is stored.
public struct OperatorTokenRecord: Codable, Sendable, Equatable {
    public var id: String
    public var name: String
    public var tokenHash: String
    /// Space-separated scopes.
    public var scopes: String
    public var createdBy: String
    public var createdAt: Int64
    public var revokedAt: Int64?

    public init(
        id: String,
        name: String,
        tokenHash: String,
        scopes: String,
        createdBy: String,
        createdAt: Int64,
        revokedAt: Int64? = nil
    ) {
        self.id = id
        self.name = name
        self.tokenHash = tokenHash
        self.scopes = scopes
        self.createdBy = createdBy
        self.createdAt = createdAt
        self.revokedAt = revokedAt
    }

    enum CodingKeys: String, CodingKey {
        case id, name, scopes
        case tokenHash = "token_hash"
        case createdBy = "created_by"
        case createdAt = "created_at"
        case revokedAt = "revoked_at"
    }
}

/// One audit row: who did what to which target, from where, and how it ended.
public struct AuditRecord: Codable, Sendable, Equatable {
    public var id: Int64?
    public var at: Int64
    public var actor: String
    public var sourceIP: String?
    public var action: String
    public var targetType: String
    public var targetID: String?
    /// `ok`, `denied` or `failed`.
    public var outcome: String
    public var reason: String?
    /// JSON object; never holds a secret.
    public var details: String

    enum CodingKeys: String, CodingKey {
        case id, at, actor, action, outcome, reason, details
        case sourceIP = "source_ip"
        case targetType = "target_type"
        case targetID = "target_id"
    }

    public init(
        at: Int64 = Clock.nowMillis(), actor: String, sourceIP: String?, action: String, targetType: String,
        targetID: String?, outcome: String = "ok", reason: String? = nil, details: [String: String] = [:]
    ) {
        self.id = nil
        self.at = at
        self.actor = actor
        self.sourceIP = sourceIP
        self.action = action
        self.targetType = targetType
        self.targetID = targetID
        self.outcome = outcome
        self.reason = reason
        self.details = JSONText.object(details)
    }
}

/// One outbox event; its id is the stream cursor for SSE and NATS.
public struct EventRecord: Codable, Sendable, Equatable {
    public var id: Int64?
    public var at: Int64
    /// e.g. `package.created`; NATS subject `muster.events.<type>`.
    public var type: String
    public var subject: String
    /// JSON object.
    public var payload: String

    public init(id: Int64? = nil, at: Int64, type: String, subject: String, payload: String) {
        self.id = id
        self.at = at
        self.type = type
        self.subject = subject
        self.payload = payload
    }
}

/// An event and, for an event about a package, that package's row as it stood when both were read together.
public struct EventWithPackage: Sendable {
    public let event: EventRecord
    public let package: PackageRecord?

    public init(event: EventRecord, package: PackageRecord?) {
        self.event = event
        self.package = package
    }
}

/// Small JSON helpers for the text columns.
public enum JSONText {
    public static func object(_ values: [String: String]) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return (try? String(decoding: encoder.encode(values), as: UTF8.self)) ?? "{}"
    }

    public static func array(_ values: [String]) -> String {
        (try? String(decoding: JSONEncoder().encode(values), as: UTF8.self)) ?? "[]"
    }
}

/// A package to store with the audit row and the event of its creation.
public struct NewPackage: Sendable {
    public let record: PackageRecord
    public let audit: AuditRecord
    public let event: EventRecord

    public init(record: PackageRecord, audit: AuditRecord, event: EventRecord) {
        self.record = record
        self.audit = audit
        self.event = event
    }
}
