import Crypto
import Foundation
import MusterIdentity
import MusterStore

/// An operator API scope (DESIGN.md). `admin` holds every other scope.
public enum Scope: String, Sendable, CaseIterable, Codable {
    case configRead = "config:read"
    case configWrite = "config:write"
    case auditRead = "audit:read"
    case admin

    /// Parses a comma- or space-separated scope list, refusing unknown names.
    public static func parseList(_ text: String) throws -> [Scope] {
        let names = text.split(whereSeparator: { $0 == "," || $0 == " " }).map(String.init)
        guard !names.isEmpty else {
            throw CoreError(.invalidConfiguration, "no scopes given (use config:read, config:write, audit:read, admin)")
        }
        return try names.map { name in
            guard let scope = Scope(rawValue: name) else {
                throw CoreError(
                    .invalidConfiguration, "unknown scope '\(name)' (use config:read, config:write, audit:read, admin)")
            }
            return scope
        }
    }
}

/// Who is calling: the operator token's name and scopes, and the address the request came from.
public struct Principal: Sendable {
    public let name: String
    public let scopes: Set<Scope>
    public let sourceIP: String?

    public func has(_ scope: Scope) -> Bool { scopes.contains(.admin) || scopes.contains(scope) }
}

/// Mints, hashes and checks operator bearer tokens (`mot_` + 256 random bits; only the SHA-256 is stored).
public enum OperatorTokens {
    public static let prefix = "mot_"

    public static func generate() -> String { prefix + randomText() }

    /// 256 bits from the system's secure generator as base64url text (tokens, console sessions, CSRF tokens).
    static func randomText() -> String {
        ByteEncoding.base64URL(ByteEncoding.randomBytes(32))
    }

    /// SHA-256 hex of a secret: all the store keeps of a token or a session cookie.
    public static func hash(_ token: String) -> String {
        ByteEncoding.hex(SHA256.hash(data: Data(token.utf8)))
    }

    /// Stores a new token with `scopes` and returns its clear text (shown once, never stored).
    public static func mint(name: String, scopes: [Scope], createdBy: String, store: Store) async throws -> String {
        let token = generate()
        let record = OperatorTokenRecord(
            id: UUID().uuidString.lowercased(), name: name, tokenHash: hash(token),
            scopes: scopes.map(\.rawValue).joined(separator: " "), createdBy: createdBy, createdAt: Clock.nowMillis(),
            revokedAt: nil
        )
        let audit = AuditRecord(
            actor: createdBy, sourceIP: nil, action: "token.create", targetType: "operator_token", targetID: record.id,
            details: ["name": name, "scopes": record.scopes]
        )
        try await store.insertOperatorToken(record, audit: audit)
        return token
    }

    /// Revokes the live tokens named `name` (their API calls and console sessions end at once); how many.
    public static func revoke(name: String, by actor: String, store: Store) async throws -> Int {
        try await store.revokeOperatorTokens(
            named: name, at: Clock.nowMillis(),
            audit: AuditRecord(
                actor: actor, sourceIP: nil, action: "token.revoke", targetType: "operator_token", targetID: name))
    }
}
