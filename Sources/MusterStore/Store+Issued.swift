import Foundation
import SQLKit

extension Store {
    /// Records certificates handed out outside a redemption (a poller's renewal) with their audit row,
    /// in one transaction, so the revocation cascade finds them.
    public func recordIssued(
        _ certificates: [IssuedCertificate], spiffeID: String, packageID: String, at now: Int64, audit: AuditRecord
    ) async throws {
        try await transaction { [isPostgres] sql in
            try await Store.insertIssued(certificates, spiffeID: spiffeID, packageID: packageID, at: now, in: sql)
            try await Store.append(audit: audit, event: nil, in: sql, isPostgres: isPostgres)
        }
    }

    /// Inserts issued certificates' records inside the caller's transaction (a redemption or a renewal).
    static func insertIssued(
        _ certificates: [IssuedCertificate], spiffeID: String, packageID: String, at now: Int64,
        in sql: any SQLDatabase
    ) async throws {
        for certificate in certificates {
            try await sql.insert(into: "issued_identities")
                .columns("serial", "spiffe_id", "package_id", "kind", "issued_at", "not_after")
                .values(
                    SQLBind(certificate.serial), SQLBind(spiffeID), SQLBind(packageID), SQLBind(certificate.kind),
                    SQLBind(now), SQLBind(certificate.notAfter)
                )
                .run()
        }
    }
}

/// A certificate Core issued, as recorded: to whom, for which package, and whether it was revoked.
public struct IssuedRecord: Codable, Sendable, Equatable {
    public var serial: String
    public var spiffeID: String
    public var packageID: String?
    public var kind: String
    public var issuedAt: Int64
    public var notAfter: Int64
    public var revokedAt: Int64?

    enum CodingKeys: String, CodingKey {
        case serial, kind
        case spiffeID = "spiffe_id"
        case packageID = "package_id"
        case issuedAt = "issued_at"
        case notAfter = "not_after"
        case revokedAt = "revoked_at"
    }
}

extension Store {
    /// The record of the certificate with `serial`, if Core issued one.
    public func issued(serial: String) async throws -> IssuedRecord? {
        try await read { sql in
            try await sql.select().columns(
                "serial", "spiffe_id", "package_id", "kind", "issued_at", "not_after", "revoked_at"
            )
            .from("issued_identities").where("serial", .equal, serial)
            .first(decoding: IssuedRecord.self)
        }
    }
}
