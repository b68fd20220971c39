import Foundation
import MusterDatabase
import SQLKit

/// One token redemption waiting for the next group commit (`PollerCache.redemptions`).
struct Redemption: Sendable {
    var tokenHash: String
    var at: Int64
    var serial: String
    var notAfter: Int64
    var address: String
}

/// Joins and renewals against the cache: a group of redemptions is one statement, a renewal one statement.
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
        try await redemptions.submit(
            Redemption(tokenHash: tokenHash, at: now, serial: serial, notAfter: notAfter, address: address))
    }

    /// Most redemptions in one statement (five parameters each, well under SQLite's limit).
    static let redemptionsPerStatement = 500

    /// The redemptions of one group commit, in order; nil where a token did not redeem. A group is one
    /// UPDATE … FROM over its values that commits by itself (with its trigger's rows): one durable commit for the
    /// group. A group too large for one statement is split, its statements in one transaction, so it still commits
    /// whole or not at all. A token twice in one group is claimed by its first join; the second lost the race.
    static func commit(_ batch: [Redemption], database: Database) async throws -> [CachedPackage?] {
        var claimed = Set<String>()
        let claims = batch.filter { claimed.insert($0.tokenHash).inserted }
        let claim: @Sendable (any SQLDatabase) async throws -> [CachedPackage] = { sql in
            var redeemed: [CachedPackage] = []
            for first in stride(from: 0, to: claims.count, by: redemptionsPerStatement) {
                let rows = claims[first..<min(first + redemptionsPerStatement, claims.count)].map {
                    item -> SQLQueryString in
                    "(\(binds: [item.tokenHash, item.at, item.serial, item.notAfter, item.address]))"
                }
                redeemed += try await sql.raw(
                    """
                    WITH claims (token_hash, at, serial, not_after, address) AS (VALUES \(rows.joined(separator: ", ")))
                    UPDATE packages SET state = 'redeemed', redeemed_at = claims.at, redeemed_serial = claims.serial,
                        redeemed_not_after = claims.not_after, redeemed_from = claims.address
                    FROM claims
                    WHERE packages.token_hash = claims.token_hash AND packages.state = 'pending' AND packages.expires_at > claims.at
                    RETURNING id, component_type, name, spiffe_id, token_hash, expires_at, selectors, state, redeemed_at, revoked_at
                    """
                ).all(decoding: CachedPackage.self, with: Self.decoder)
            }
            return redeemed
        }
        let packages =
            claims.count > redemptionsPerStatement
            ? try await database.transaction(claim) : try await database.write(claim)
        var redeemed = Dictionary(packages.map { ($0.tokenHash ?? "", $0) }, uniquingKeysWith: { first, _ in first })
        return batch.map { item in redeemed.removeValue(forKey: item.tokenHash) }
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
