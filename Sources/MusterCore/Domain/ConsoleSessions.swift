import Foundation
import Logging
import MusterIdentity
import MusterStore

/// A signed-in console operator: who, with which scopes, and the CSRF token their forms must carry.
public struct ConsoleSession: Sendable {
    public let principal: Principal
    public let csrf: String
    let idHash: String
}

/// Web console sign-in: a session opened with an operator token and kept server-side (in the store, so every Core
/// replica knows it). The cookie holds 256 random bits; only their SHA-256 is stored. A session ends on sign-out,
/// after `idleTimeout` without a request, after `lifetime` in any case, and as soon as its token is revoked.
public struct ConsoleSessions: Sendable {
    let store: Store
    let auditor: RefusalAuditor
    let logger: Logger
    let idleTimeout: Int64
    let lifetime: Int64

    public init(
        store: Store, auditor: RefusalAuditor, logger: Logger, idleTimeout: TimeInterval = 1800,
        lifetime: TimeInterval = 12 * 3600
    ) {
        self.store = store
        self.auditor = auditor
        self.logger = logger
        self.idleTimeout = Int64(idleTimeout * 1000)
        self.lifetime = Int64(lifetime * 1000)
    }

    /// Opens a session for `token`; the clear cookie value (shown to the browser once) and the session.
    public func signIn(token: String, from sourceIP: String?) async throws -> (cookie: String, session: ConsoleSession)
    {
        try await DomainError.mapping {
            guard
                let (principal, record) = try await OperatorTokens.principal(
                    token: token, store: store, sourceIP: sourceIP)
            else {
                await auditor.record(
                    AuditRecord(
                        actor: "anonymous", sourceIP: sourceIP, action: "auth.denied", targetType: "endpoint",
                        targetID: "POST /login", outcome: "denied", reason: "console sign-in: token not recognized"),
                    source: sourceIP ?? "unknown")
                throw DomainError(.unauthenticated, "that token is not recognized (unknown or revoked)")
            }
            let cookie = Self.randomText()
            let csrf = Self.randomText()
            let now = Clock.nowMillis()
            let idHash = Self.hash(cookie)
            try await store.createSession(
                ConsoleSessionRecord(
                    idHash: idHash, tokenHash: record.tokenHash, actor: principal.name, scopes: record.scopes,
                    csrf: csrf, sourceIP: sourceIP, createdAt: now, lastSeenAt: now, expiresAt: now + lifetime),
                pruningIdleBefore: now - idleTimeout,
                audit: AuditRecord(
                    at: now, actor: principal.name, sourceIP: sourceIP, action: "console.sign_in",
                    targetType: "session",
                    targetID: String(idHash.prefix(16)), details: ["scopes": record.scopes]))
            logger.info("console sign-in", metadata: ["actor": "\(principal.name)"])
            return (cookie, ConsoleSession(principal: principal, csrf: csrf, idHash: idHash))
        }
    }

    /// The live session a cookie names, or nil (unknown, idle too long, past its lifetime, or its token revoked).
    public func resume(cookie: String, from sourceIP: String?) async throws -> ConsoleSession? {
        try await DomainError.mapping {
            let idHash = Self.hash(cookie)
            guard let record = try await store.session(idHash: idHash) else { return nil }
            let now = Clock.nowMillis()
            guard now - record.lastSeenAt < idleTimeout, now < record.expiresAt,
                let token = try await store.operatorToken(hash: record.tokenHash), token.revokedAt == nil
            else {
                try await store.deleteSession(idHash: idHash, audit: nil)
                return nil
            }
            // The idle clock restarts at most once a minute (sooner for short timeouts), so reading pages costs
            // no write each time.
            if now - record.lastSeenAt > min(60_000, idleTimeout / 4) {
                try await store.touchSession(idHash: idHash, at: now)
            }
            let scopes = Set(token.scopes.split(separator: " ").compactMap { Scope(rawValue: String($0)) })
            return ConsoleSession(
                principal: Principal(name: record.actor, scopes: scopes, sourceIP: sourceIP), csrf: record.csrf,
                idHash: idHash)
        }
    }

    /// Ends a session (sign-out), audited.
    public func signOut(_ session: ConsoleSession) async throws {
        try await DomainError.mapping {
            try await store.deleteSession(
                idHash: session.idHash,
                audit: AuditRecord(
                    actor: session.principal.name, sourceIP: session.principal.sourceIP, action: "console.sign_out",
                    targetType: "session", targetID: String(session.idHash.prefix(16))))
        }
    }

    /// Whether a submitted CSRF token is the session's (compared in constant time).
    public static func matches(_ submitted: String?, _ expected: String) -> Bool {
        guard let submitted else { return false }
        return ByteEncoding.constantTimeEqual(submitted, expected)
    }

    static func randomText() -> String { OperatorTokens.randomText() }

    static func hash(_ text: String) -> String { OperatorTokens.hash(text) }
}

extension OperatorTokens {
    /// The principal an operator token stands for, or nil when it is unknown or revoked.
    static func principal(token: String, store: Store, sourceIP: String?) async throws -> (
        Principal, OperatorTokenRecord
    )? {
        guard let record = try await store.operatorToken(hash: hash(token)), record.revokedAt == nil else { return nil }
        let scopes = Set(record.scopes.split(separator: " ").compactMap { Scope(rawValue: String($0)) })
        return (Principal(name: "token:" + record.name, scopes: scopes, sourceIP: sourceIP), record)
    }
}
