import Foundation

/// Where a self-enrollment request is (DESIGN.md): Pending → Approved → Activated, Pending → Denied,
/// Pending → Expired.
public enum EnrollmentStatus: String, Codable, Sendable, CaseIterable {
    case pending, approved, denied, expired, activated
}

/// One self-enrollment request as Core stores it. Timestamps are epoch milliseconds.
public struct EnrollmentRecord: Codable, Sendable, Equatable {
    public var id: String
    public var status: EnrollmentStatus
    public var componentType: ComponentType
    /// The relaying poller; an approved identity lives under it.
    public var pollerName: String
    public var requestedName: String
    public var machineID: String
    /// JSON object of the claimed facts (machine_id, hostname, fqdn, addresses, os, kernel, arch).
    public var claimed: String
    /// `sha256:` + hex of the CSR's SubjectPublicKeyInfo: the key an approval binds.
    public var keyFingerprint: String
    /// The agent's address as the relaying poller saw it.
    public var sourceAddress: String
    /// When the poller received the request (its clock).
    public var receivedAt: Int64
    /// When Core recorded it.
    public var requestedAt: Int64
    public var expiresAt: Int64
    public var decidedAt: Int64?
    public var decidedBy: String?
    public var decisionReason: String?
    public var name: String?
    public var spiffeID: String?
    /// The package the approved identity lives under (revocable like any other).
    public var packageID: String?
    public var activatedAt: Int64?

    public init(
        id: String, status: EnrollmentStatus = .pending, componentType: ComponentType, pollerName: String,
        requestedName: String, machineID: String, claimed: String, keyFingerprint: String, sourceAddress: String,
        receivedAt: Int64, requestedAt: Int64, expiresAt: Int64
    ) {
        self.id = id
        self.status = status
        self.componentType = componentType
        self.pollerName = pollerName
        self.requestedName = requestedName
        self.machineID = machineID
        self.claimed = claimed
        self.keyFingerprint = keyFingerprint
        self.sourceAddress = sourceAddress
        self.receivedAt = receivedAt
        self.requestedAt = requestedAt
        self.expiresAt = expiresAt
    }

    enum CodingKeys: String, CodingKey {
        case id, status, claimed, name
        case componentType = "component_type"
        case pollerName = "poller_name"
        case requestedName = "requested_name"
        case machineID = "machine_id"
        case keyFingerprint = "key_fingerprint"
        case sourceAddress = "source_address"
        case receivedAt = "received_at"
        case requestedAt = "requested_at"
        case expiresAt = "expires_at"
        case decidedAt = "decided_at"
        case decidedBy = "decided_by"
        case decisionReason = "decision_reason"
        case spiffeID = "spiffe_id"
        case packageID = "package_id"
        case activatedAt = "activated_at"
    }
}

/// Which enrollments a list asks for, and where the page starts (newest first).
public struct EnrollmentFilter: Sendable, Equatable {
    public var status: EnrollmentStatus?
    /// Only requests that were decided (anything but pending).
    public var decidedOnly: Bool
    public var pollerName: String?
    public var limit: Int
    public var cursor: PageCursor?

    public init(
        status: EnrollmentStatus? = nil, decidedOnly: Bool = false, pollerName: String? = nil, limit: Int = 100,
        cursor: PageCursor? = nil
    ) {
        self.status = status
        self.decidedOnly = decidedOnly
        self.pollerName = pollerName
        self.limit = limit
        self.cursor = cursor
    }
}

/// An outbox event made from an enrollment as it is after a move.
public typealias EnrollmentEvent = @Sendable (EnrollmentRecord) -> EventRecord
