import Foundation
import SQLKit

extension Store {
    /// Records certificates handed out outside a redemption (a poller's renewal) with their audit row,
    /// in one transaction, so the revocation cascade finds them.
    public func recordIssued(_ certificates: [IssuedCertificate], spiffeID: String, packageID: String, at now: Int64, audit: AuditRecord) async throws {
        try await transaction { [isPostgres] sql in
            try await Store.insertIssued(certificates, spiffeID: spiffeID, packageID: packageID, at: now, in: sql)
            try await Store.append(audit: audit, event: nil, in: sql, isPostgres: isPostgres)
        }
    }

    /// Inserts issued certificates' records inside the caller's transaction (a redemption or a renewal).
    static func insertIssued(_ certificates: [IssuedCertificate], spiffeID: String, packageID: String, at now: Int64,
                             in sql: any SQLDatabase) async throws {
        for certificate in certificates {
            try await sql.insert(into: "issued_identities")
                .columns("serial", "spiffe_id", "package_id", "kind", "issued_at", "not_after")
                .values(SQLBind(certificate.serial), SQLBind(spiffeID), SQLBind(packageID), SQLBind(certificate.kind),
                        SQLBind(now), SQLBind(certificate.notAfter))
                .run()
        }
    }
}
