import Foundation
import SQLKit

/// Joins and renewals against the cache: each a single atomic statement on the writer connection.
extension PollerCache {
    public func package(tokenHash: String) async throws -> CachedPackage? {
        try await store.read { [decoder] sql in
            try await sql.raw("SELECT * FROM packages WHERE token_hash = \(bind: tokenHash)").first(decoding: CachedPackage.self, with: decoder)
        }
    }

    public func package(id: String) async throws -> CachedPackage? {
        try await store.read { [decoder] sql in
            try await sql.raw("SELECT * FROM packages WHERE id = \(bind: id)").first(decoding: CachedPackage.self, with: decoder)
        }
    }

    /// Redeems a token: one conditional UPDATE on the single writer connection, whose trigger records the issued
    /// SVID and queues the activation in the same atomic statement. Returns the package, or nil when the token
    /// is unknown, spent, revoked or expired.
    public func redeem(tokenHash: String, at now: Int64, serial: String, notAfter: Int64, from address: String) async throws -> CachedPackage? {
        try await store.write { [decoder] sql in
            try await sql.raw("""
                UPDATE packages SET state = 'redeemed', redeemed_at = \(bind: now), redeemed_serial = \(bind: serial),
                    redeemed_not_after = \(bind: notAfter), redeemed_from = \(bind: address)
                WHERE token_hash = \(bind: tokenHash) AND state = 'pending' AND expires_at > \(bind: now)
                RETURNING id, component_type, name, spiffe_id, token_hash, expires_at, selectors, state, redeemed_at, revoked_at
                """).first(decoding: CachedPackage.self, with: decoder)
        }
    }

    public func issued(serial: String) async throws -> IssuedSVID? {
        try await store.read { [decoder] sql in
            try await sql.raw("SELECT serial, package_id, spiffe_id, not_after, revoked_at FROM issued WHERE serial = \(bind: serial)")
                .first(decoding: IssuedSVID.self, with: decoder)
        }
    }

    /// Records a renewed SVID, unless the package was revoked meanwhile (then false): one INSERT … SELECT.
    public func recordRenewal(serial: String, of previous: IssuedSVID, at now: Int64, notAfter: Int64) async throws -> Bool {
        try await store.write { sql in
            try await sql.raw("""
                INSERT INTO issued (serial, package_id, spiffe_id, issued_at, not_after)
                SELECT \(bind: serial), id, spiffe_id, \(bind: now), \(bind: notAfter) FROM packages
                WHERE id = \(bind: previous.packageID) AND state = 'redeemed'
                RETURNING serial
                """).first() != nil
        }
    }
}
