import Foundation
import MusterStore

/// A poller as `GET /api/pollers` shows it.
struct PollerView: Encodable {
    let name: String
    let spiffeID: String
    let site: String
    let packageID: String
    let status: String
    let advertiseAddress: String?
    let lastContactAt: String?
    let lastContactFrom: String?
    let createdAt: String

    enum CodingKeys: String, CodingKey {
        case name, site, status
        case spiffeID = "spiffe_id"
        case packageID = "package_id"
        case advertiseAddress = "advertise_address"
        case lastContactAt = "last_contact_at"
        case lastContactFrom = "last_contact_from"
        case createdAt = "created_at"
    }

    init(_ record: PollerRecord) {
        name = record.name
        spiffeID = record.spiffeID
        site = record.site
        packageID = record.packageID
        status = record.status
        advertiseAddress = record.advertiseAddress
        lastContactAt = record.lastContactAt.map(Timestamp.text)
        lastContactFrom = record.lastContactFrom
        createdAt = Timestamp.text(record.createdAt)
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(spiffeID, forKey: .spiffeID)
        try c.encode(site, forKey: .site)
        try c.encode(packageID, forKey: .packageID)
        try c.encode(status, forKey: .status)
        try c.encode(advertiseAddress, forKey: .advertiseAddress)
        try c.encode(lastContactAt, forKey: .lastContactAt)
        try c.encode(lastContactFrom, forKey: .lastContactFrom)
        try c.encode(createdAt, forKey: .createdAt)
    }
}

/// An audit row as `GET /api/audit` shows it.
struct AuditView: Encodable {
    let id: Int64
    let at: String
    let actor: String
    let sourceIP: String?
    let action: String
    let targetType: String
    let targetID: String?
    let outcome: String
    let reason: String?
    let details: [String: String]

    enum CodingKeys: String, CodingKey {
        case id, at, actor, action, outcome, reason, details
        case sourceIP = "source_ip"
        case targetType = "target_type"
        case targetID = "target_id"
    }

    init(_ record: AuditRecord) {
        id = record.id ?? 0
        at = Timestamp.text(record.at)
        actor = record.actor
        sourceIP = record.sourceIP
        action = record.action
        targetType = record.targetType
        targetID = record.targetID
        outcome = record.outcome
        reason = record.reason
        details = (try? JSONDecoder().decode([String: String].self, from: Data(record.details.utf8))) ?? [:]
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(at, forKey: .at)
        try c.encode(actor, forKey: .actor)
        try c.encode(sourceIP, forKey: .sourceIP)
        try c.encode(action, forKey: .action)
        try c.encode(targetType, forKey: .targetType)
        try c.encode(targetID, forKey: .targetID)
        try c.encode(outcome, forKey: .outcome)
        try c.encode(reason, forKey: .reason)
        try c.encode(details, forKey: .details)
    }
}
