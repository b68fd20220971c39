import Foundation
import Hummingbird
import Logging
import MusterStore

/// One endpoint: its method, path, the scope it needs (nil: public), what it does, and its handler.
/// The router and `/openapi.json` are both built from this one table, so they cannot drift apart.
struct Route: Sendable {
    let method: HTTPRequest.Method
    let path: String
    let scope: Scope?
    let summary: String
    let responses: [Int]
    let handler: @Sendable (inout Request, CoreRequestContext, Principal?) async throws -> Response
}

/// The operator HTTP API (DESIGN.md, "Interfaces").
public struct CoreAPI: Sendable {
    let packages: PackageService
    let store: Store
    let hub: EventHub
    let metrics: CoreMetrics
    let limiter: RateLimiter
    let identity: CoreIdentity
    let sessions: ConsoleSessions
    let logger: Logger

    public init(
        packages: PackageService, hub: EventHub, metrics: CoreMetrics, limiter: RateLimiter, identity: CoreIdentity,
        logger: Logger, sessions: ConsoleSessions? = nil
    ) {
        self.sessions = sessions ?? ConsoleSessions(store: packages.store, auditor: packages.auditor, logger: logger)
        self.packages = packages
        self.store = packages.store
        self.hub = hub
        self.metrics = metrics
        self.limiter = limiter
        self.identity = identity
        self.logger = logger
    }

    public func router() -> Router<CoreRequestContext> {
        let router = Router(context: CoreRequestContext.self)
        let routes = self.routes
        let errors = ErrorMiddleware(
            metrics: metrics, logger: logger,
            templates: routes.map { ($0.method.rawValue, $0.path) }
                + console.routes.map { ($0.method.rawValue, $0.path) })
        router.add(middleware: errors)
        for route in routes {
            router.on(RouterPath(route.path), method: route.method) { request, context in
                var request = request
                let principal = try await route.scope.asyncMap {
                    try await authenticate(request, context: context, scope: $0, path: route.path)
                }
                return try await route.handler(&request, context, principal)
            }
        }
        Console(api: self, sessions: sessions, errors: errors).add(to: router)
        return router
    }

    /// The web console over this API's services (its error mapping is the one middleware's, rendered as pages).
    var console: Console {
        Console(api: self, sessions: sessions, errors: ErrorMiddleware(metrics: metrics, logger: logger, templates: []))
    }

    /// Checks the bearer token and its scope; refusals are audited (never with the token).
    func authenticate(_ request: Request, context: CoreRequestContext, scope: Scope, path: String) async throws
        -> Principal
    {
        func deny(_ error: APIError, actor: String) async throws -> Never {
            metrics.authFailures.increment()
            await packages.auditor.record(
                AuditRecord(
                    actor: actor, sourceIP: context.remoteIP, action: "auth.denied", targetType: "endpoint",
                    targetID: "\(request.method.rawValue) \(path)", outcome: "denied", reason: error.message
                ), source: context.remoteIP ?? "unknown")
            throw error
        }
        guard let header = request.headers[.authorization] else {
            try await deny(
                APIError(.unauthorized, "missing bearer token: send Authorization: Bearer <token>"), actor: "anonymous")
        }
        guard header.lowercased().hasPrefix("bearer "),
            case let token = header.dropFirst(7).trimmingCharacters(in: .whitespaces), !token.isEmpty
        else {
            try await deny(APIError(.unauthorized, "Authorization must be 'Bearer <token>'"), actor: "anonymous")
        }
        guard
            let (principal, record) = try await OperatorTokens.principal(
                token: token, store: store, sourceIP: context.remoteIP)
        else {
            try await deny(APIError(.unauthorized, "token not recognized (unknown or revoked)"), actor: "anonymous")
        }
        guard principal.has(scope) else {
            try await deny(
                APIError(.forbidden, "this needs scope \(scope.rawValue); the token has \(record.scopes)"),
                actor: principal.name)
        }
        return principal
    }
}
