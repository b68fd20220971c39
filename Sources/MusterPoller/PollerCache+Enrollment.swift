import Foundation
import MusterDatabase
import SQLKit

/// Self-enrollment requests at the poller: stored on arrival, relayed to Core from here (so Core may be away),
/// decided by Core's stream, and collected by the enrolled key.
extension PollerCache {
    /// Stores a new request unless `cap` requests are already pending; false when over the cap.
    public func insertEnrollment(_ enrollment: CachedEnrollment, cap: Int) async throws -> Bool {
        try await database.transaction { sql in
            let pending =
                try await sql.raw("SELECT COUNT(*) AS n FROM enrollments WHERE state = 'pending'")
                .first(decodingColumn: "n", as: Int64.self) ?? 0
            guard pending < cap else { return false }
            try await sql.raw(
                """
                INSERT INTO enrollments (id, handle_hash, component_type, requested_name, claimed, csr, key_fingerprint,
                    source_address, received_at, state)
                VALUES (\(bind: enrollment.id), \(bind: enrollment.handleHash), \(bind: enrollment.componentType),
                    \(bind: enrollment.requestedName), \(bind: enrollment.claimed), \(bind: enrollment.csr),
                    \(bind: enrollment.keyFingerprint), \(bind: enrollment.sourceAddress), \(bind: enrollment.receivedAt),
                    'pending')
                """
            ).run()
            return true
        }
    }

    public func enrollment(id: String) async throws -> CachedEnrollment? {
        try await database.read { sql in
            try await sql.raw("SELECT * FROM enrollments WHERE id = \(bind: id)").first(
                decoding: CachedEnrollment.self, with: Self.decoder)
        }
    }

    /// Requests Core has not acknowledged yet, oldest first.
    public func unrelayedEnrollments(limit: Int) async throws -> [CachedEnrollment] {
        try await database.read { sql in
            try await sql.raw(
                "SELECT * FROM enrollments WHERE relayed = 0 ORDER BY received_at LIMIT \(unsafeRaw: "\(limit)")"
            ).all(decoding: CachedEnrollment.self, with: Self.decoder)
        }
    }

    /// Marks requests Core recorded; those it refused for good are denied here with `refusal` as the reason.
    public func markRelayed(accepted: [String], refused: [String], refusal: String) async throws {
        try await database.transaction { sql in
            for id in accepted {
                try await sql.raw("UPDATE enrollments SET relayed = 1 WHERE id = \(bind: id)").run()
            }
            for id in refused {
                try await sql.raw(
                    """
                    UPDATE enrollments SET relayed = 1, state = 'denied', reason = \(bind: refusal)
                    WHERE id = \(bind: id) AND state = 'pending'
                    """
                ).run()
            }
        }
    }

    /// What a decision did to the request here.
    public enum DecisionOutcome: Sendable, Equatable { case applied, unknownRequest, keyMismatch }

    /// Applies Core's decision, with the stream cursor, in one transaction. An approval whose fingerprint is
    /// not the key this request was made with is refused (the request is denied here, nothing can be collected).
    public func applyDecision(
        requestID: String, status: String, reason: String, keyFingerprint: String, package: CachedPackage?,
        cursor: Int64
    ) async throws -> DecisionOutcome {
        try await database.transaction { sql in
            guard
                let held = try await sql.raw("SELECT * FROM enrollments WHERE id = \(bind: requestID)").first(
                    decoding: CachedEnrollment.self, with: Self.decoder)
            else {
                try await Self.setCursor(cursor, in: sql)
                return .unknownRequest
            }
            var outcome = DecisionOutcome.applied
            switch status {
            case "approved":
                guard let package, held.keyFingerprint == keyFingerprint else {
                    try await sql.raw(
                        """
                        UPDATE enrollments SET state = 'denied',
                            reason = 'the approval did not name the key this request was made with'
                        WHERE id = \(bind: requestID) AND state = 'pending'
                        """
                    ).run()
                    outcome = .keyMismatch
                    break
                }
                try await sql.raw(
                    """
                    INSERT INTO packages (id, component_type, name, spiffe_id, token_hash, expires_at, selectors, state)
                    VALUES (\(bind: package.id), \(bind: package.componentType), \(bind: package.name),
                            \(bind: package.spiffeID), NULL, \(bind: package.expiresAt), \(bind: package.selectors), 'pending')
                    ON CONFLICT (id) DO NOTHING
                    """
                ).run()
                try await sql.raw(
                    """
                    UPDATE enrollments SET state = 'approved', package_id = \(bind: package.id)
                    WHERE id = \(bind: requestID) AND state = 'pending'
                    """
                ).run()
            case "denied", "expired":
                try await sql.raw(
                    """
                    UPDATE enrollments SET state = \(bind: status), reason = \(bind: reason)
                    WHERE id = \(bind: requestID) AND state = 'pending'
                    """
                ).run()
            default:
                break
            }
            try await Self.setCursor(cursor, in: sql)
            return outcome
        }
    }

    /// The approved request's first collection: its package is redeemed (the trigger records the SVID and
    /// queues the activation for Core in the same statement) and the request marked activated. Nil when the
    /// request is not approved or its package was revoked or has expired.
    public func collectEnrollment(id: String, serial: String, notAfter: Int64, from address: String, at now: Int64)
        async throws -> CachedPackage?
    {
        try await database.transaction { sql in
            let package = try await sql.raw(
                """
                UPDATE packages SET state = 'redeemed', redeemed_at = \(bind: now), redeemed_serial = \(bind: serial),
                    redeemed_not_after = \(bind: notAfter), redeemed_from = \(bind: address)
                WHERE id = (SELECT package_id FROM enrollments WHERE id = \(bind: id) AND state = 'approved')
                    AND state = 'pending' AND expires_at > \(bind: now)
                RETURNING id, component_type, name, spiffe_id, token_hash, expires_at, selectors, state, redeemed_at, revoked_at
                """
            ).first(decoding: CachedPackage.self, with: Self.decoder)
            guard let package else { return nil }
            try await sql.raw("UPDATE enrollments SET state = 'activated' WHERE id = \(bind: id)").run()
            return package
        }
    }

    /// A collection repeated after the first (the agent lost the answer): another SVID for the same key,
    /// recorded like a renewal, while the package stays live. Nil once it was revoked.
    public func recollectEnrollment(id: String, serial: String, notAfter: Int64, at now: Int64) async throws
        -> CachedPackage?
    {
        try await database.transaction { sql in
            guard
                let package = try await sql.raw(
                    """
                    SELECT * FROM packages WHERE state = 'redeemed'
                        AND id = (SELECT package_id FROM enrollments WHERE id = \(bind: id) AND state = 'activated')
                    """
                ).first(decoding: CachedPackage.self, with: Self.decoder)
            else { return nil }
            try await sql.raw(
                """
                INSERT INTO issued (serial, package_id, spiffe_id, issued_at, not_after)
                VALUES (\(bind: serial), \(bind: package.id), \(bind: package.spiffeID), \(bind: now), \(bind: notAfter))
                """
            ).run()
            return package
        }
    }

    /// The package an enrollment's identity lives under.
    public func package(id: String) async throws -> CachedPackage? {
        try await database.read { sql in
            try await sql.raw("SELECT * FROM packages WHERE id = \(bind: id)").first(
                decoding: CachedPackage.self, with: Self.decoder)
        }
    }
}
