import Foundation
import MusterDatabase
import SQLKit

/// Joins and renewals against the cache: a redemption is one statement (committed in groups), a renewal one statement.
extension PollerCache {
    public func package(tokenHash: String) async throws -> CachedPackage? {
        try await database.read { sql in
            try await sql.raw("SELECT * FROM packages WHERE token_hash = \(bind: tokenHash)").first(
                decoding: CachedPackage.self, with: Self.decoder)
        }
    }

    /// Redeems a token: one conditional UPDATE whose trigger records the issued SVID and queues the activation in
    /// the same statement. Joins arriving together share one transaction and one durable commit (group commit);
    /// each still gets its own verdict. Returns the package, or nil when the token is unknown, spent, revoked
    /// or expired.
    public func redeem(tokenHash: String, at now: Int64, serial: String, notAfter: Int64, from address: String)
        async throws -> CachedPackage?
    {
        try await redemptions.redeem(
            Redemption(tokenHash: tokenHash, at: now, serial: serial, notAfter: notAfter, address: address))
    }

    /// The redemptions of one group commit, in order; nil where a token did not redeem.
    static func commit(_ batch: [Redemption], database: Database) async throws -> [CachedPackage?] {
        try await database.transaction { sql in
            var results: [CachedPackage?] = []
            for item in batch {
                results.append(
                    try await sql.raw(
                        """
                        UPDATE packages SET state = 'redeemed', redeemed_at = \(bind: item.at), redeemed_serial = \(bind: item.serial),
                            redeemed_not_after = \(bind: item.notAfter), redeemed_from = \(bind: item.address)
                        WHERE token_hash = \(bind: item.tokenHash) AND state = 'pending' AND expires_at > \(bind: item.at)
                        RETURNING id, component_type, name, spiffe_id, token_hash, expires_at, selectors, state, redeemed_at, revoked_at
                        """
                    ).first(decoding: CachedPackage.self, with: Self.decoder))
            }
            return results
        }
    }

    public func issued(serial: String) async throws -> IssuedSVID? {
        try await database.read { sql in
            try await sql.raw(
                "SELECT serial, package_id, spiffe_id, not_after, revoked_at FROM issued WHERE serial = \(bind: serial)"
            )
            .first(decoding: IssuedSVID.self, with: Self.decoder)
        }
    }

    /// Records a renewed SVID, unless the package was revoked meanwhile (then false): one INSERT … SELECT.
    public func recordRenewal(serial: String, of previous: IssuedSVID, at now: Int64, notAfter: Int64) async throws
        -> Bool
    {
        try await database.write { sql in
            try await sql.raw(
                """
                INSERT INTO issued (serial, package_id, spiffe_id, issued_at, not_after)
                SELECT \(bind: serial), id, spiffe_id, \(bind: now), \(bind: notAfter) FROM packages
                WHERE id = \(bind: previous.packageID) AND state = 'redeemed'
                RETURNING serial
                """
            ).first() != nil
        }
    }
}
