import Foundation
import MusterStore

/// A package as the API, CLI, events and audit readers see it: every field but the secret.
public struct PackageView: Codable, Sendable, Equatable {
    public var id: String
    public var name: String
    public var componentType: String
    public var status: String
    public var spiffeID: String
    public var pollerID: String?
    public var site: String
    public var selectors: [String]
    public var notes: String
    public var ttlSeconds: Int64
    public var createdBy: String
    public var createdAt: String
    public var expiresAt: String
    public var deliveredAt: String?
    public var deliveredVia: String?
    public var downloadedAt: String?
    public var activatedAt: String?
    public var activatedFromIP: String?
    public var activatedSpiffeID: String?
    public var expiredAt: String?
    public var revokedAt: String?
    public var revokedBy: String?
    public var revokeReason: String?
    public var joinCommand: String?

    enum CodingKeys: String, CodingKey {
        case id, name, status, site, selectors, notes
        case componentType = "component_type"
        case spiffeID = "spiffe_id"
        case pollerID = "poller_id"
        case ttlSeconds = "ttl_seconds"
        case createdBy = "created_by"
        case createdAt = "created_at"
        case expiresAt = "expires_at"
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
        case joinCommand = "join_command"
    }

    /// Every key, including nulls, so readers can rely on the shape.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(name, forKey: .name)
        try c.encode(componentType, forKey: .componentType)
        try c.encode(status, forKey: .status)
        try c.encode(spiffeID, forKey: .spiffeID)
        try c.encode(pollerID, forKey: .pollerID)
        try c.encode(site, forKey: .site)
        try c.encode(selectors, forKey: .selectors)
        try c.encode(notes, forKey: .notes)
        try c.encode(ttlSeconds, forKey: .ttlSeconds)
        try c.encode(createdBy, forKey: .createdBy)
        try c.encode(createdAt, forKey: .createdAt)
        try c.encode(expiresAt, forKey: .expiresAt)
        try c.encode(deliveredAt, forKey: .deliveredAt)
        try c.encode(deliveredVia, forKey: .deliveredVia)
        try c.encode(downloadedAt, forKey: .downloadedAt)
        try c.encode(activatedAt, forKey: .activatedAt)
        try c.encode(activatedFromIP, forKey: .activatedFromIP)
        try c.encode(activatedSpiffeID, forKey: .activatedSpiffeID)
        try c.encode(expiredAt, forKey: .expiredAt)
        try c.encode(revokedAt, forKey: .revokedAt)
        try c.encode(revokedBy, forKey: .revokedBy)
        try c.encode(revokeReason, forKey: .revokeReason)
        try c.encode(joinCommand, forKey: .joinCommand)
    }

    public init(_ record: PackageRecord, joinCommand: String?) {
        id = record.id
        name = record.name
        componentType = record.componentType.rawValue
        status = record.status.rawValue
        spiffeID = record.spiffeID
        pollerID = record.pollerName
        site = record.site
        selectors = record.selectorList
        notes = record.notes
        ttlSeconds = record.ttlSeconds
        createdBy = record.createdBy
        createdAt = Timestamp.text(record.createdAt)
        expiresAt = Timestamp.text(record.expiresAt)
        deliveredAt = record.deliveredAt.map(Timestamp.text)
        deliveredVia = record.deliveredVia
        downloadedAt = record.downloadedAt.map(Timestamp.text)
        activatedAt = record.activatedAt.map(Timestamp.text)
        activatedFromIP = record.activatedFromIP
        activatedSpiffeID = record.activatedSpiffeID
        expiredAt = record.expiredAt.map(Timestamp.text)
        revokedAt = record.revokedAt.map(Timestamp.text)
        revokedBy = record.revokedBy
        revokeReason = record.revokeReason
        self.joinCommand = joinCommand
    }
}

/// RFC 3339 text for stored milliseconds, and back.
public enum Timestamp {
    public static func text(_ millis: Int64) -> String {
        Clock.date(millis).formatted(
            .iso8601.year().month().day().dateSeparator(.dash).time(includingFractionalSeconds: true).timeSeparator(
                .colon
            ).timeZone(separator: .omitted))
    }

    public static func millis(parsing text: String) -> Int64? {
        if let date = try? Date(text, strategy: .iso8601) { return Clock.millis(date) }
        if let date = try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(text) {
            return Clock.millis(date)
        }
        return nil
    }
}

/// JSON in the API's one style: snake_case keys given by each type, sorted for stable output.
public enum APIJSON {
    public static func encode(_ value: some Encodable) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(value)
    }
}
