import Foundation
import MusterIdentity
import MusterStore

/// A self-enrollment as the API, CLI, console and events show it (DESIGN.md): claimed facts beside observed
/// ones, the key's fingerprint, and the warnings Core computed when it was read.
public struct EnrollmentView: Codable, Sendable, Equatable {
    public struct Observed: Codable, Sendable, Equatable {
        public var sourceAddress: String
        public var pollerID: String
        public var receivedAt: String

        enum CodingKeys: String, CodingKey {
            case sourceAddress = "source_address"
            case pollerID = "poller_id"
            case receivedAt = "received_at"
        }
    }

    public struct Warning: Codable, Sendable, Equatable {
        public var code: String
        public var message: String
    }

    public var id: String
    public var status: String
    public var componentType: String
    public var pollerID: String
    public var requestedName: String
    public var suggestedName: String
    public var claimed: EnrollmentFacts
    public var observed: Observed
    public var keyFingerprint: String
    public var keyFingerprintShort: String
    public var warnings: [Warning]
    public var requestedAt: String
    public var expiresAt: String
    public var decidedAt: String?
    public var decidedBy: String?
    public var decisionReason: String?
    public var name: String?
    public var spiffeID: String?
    public var packageID: String?
    public var activatedAt: String?

    enum CodingKeys: String, CodingKey {
        case id, status, claimed, observed, warnings, name
        case componentType = "component_type"
        case pollerID = "poller_id"
        case requestedName = "requested_name"
        case suggestedName = "suggested_name"
        case keyFingerprint = "key_fingerprint"
        case keyFingerprintShort = "key_fingerprint_short"
        case requestedAt = "requested_at"
        case expiresAt = "expires_at"
        case decidedAt = "decided_at"
        case decidedBy = "decided_by"
        case decisionReason = "decision_reason"
        case spiffeID = "spiffe_id"
        case packageID = "package_id"
        case activatedAt = "activated_at"
    }

    /// Every key, including nulls, so readers can rely on the shape.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(status, forKey: .status)
        try c.encode(componentType, forKey: .componentType)
        try c.encode(pollerID, forKey: .pollerID)
        try c.encode(requestedName, forKey: .requestedName)
        try c.encode(suggestedName, forKey: .suggestedName)
        try c.encode(claimed, forKey: .claimed)
        try c.encode(observed, forKey: .observed)
        try c.encode(keyFingerprint, forKey: .keyFingerprint)
        try c.encode(keyFingerprintShort, forKey: .keyFingerprintShort)
        try c.encode(warnings, forKey: .warnings)
        try c.encode(requestedAt, forKey: .requestedAt)
        try c.encode(expiresAt, forKey: .expiresAt)
        try c.encode(decidedAt, forKey: .decidedAt)
        try c.encode(decidedBy, forKey: .decidedBy)
        try c.encode(decisionReason, forKey: .decisionReason)
        try c.encode(name, forKey: .name)
        try c.encode(spiffeID, forKey: .spiffeID)
        try c.encode(packageID, forKey: .packageID)
        try c.encode(activatedAt, forKey: .activatedAt)
    }

    public init(_ record: EnrollmentRecord, warnings: [Warning] = []) {
        let facts = EnrollmentView.facts(of: record)
        id = record.id
        status = record.status.rawValue
        componentType = record.componentType.rawValue
        pollerID = record.pollerName
        requestedName = record.requestedName
        suggestedName = record.requestedName.isEmpty ? facts.suggestedName : record.requestedName
        claimed = facts
        observed = Observed(
            sourceAddress: record.sourceAddress, pollerID: record.pollerName,
            receivedAt: Timestamp.text(record.receivedAt))
        keyFingerprint = record.keyFingerprint
        keyFingerprintShort = KeyFingerprint.short(record.keyFingerprint)
        self.warnings = warnings
        requestedAt = Timestamp.text(record.requestedAt)
        expiresAt = Timestamp.text(record.expiresAt)
        decidedAt = record.decidedAt.map(Timestamp.text)
        decidedBy = record.decidedBy
        decisionReason = record.decisionReason
        name = record.name
        spiffeID = record.spiffeID
        packageID = record.packageID
        activatedAt = record.activatedAt.map(Timestamp.text)
    }

    static func facts(of record: EnrollmentRecord) -> EnrollmentFacts {
        (try? JSONDecoder().decode(EnrollmentFacts.self, from: Data(record.claimed.utf8)))
            ?? EnrollmentFacts(
                machineID: record.machineID, hostname: "", fqdn: "", addresses: [], os: "", kernel: "", arch: "")
    }
}
