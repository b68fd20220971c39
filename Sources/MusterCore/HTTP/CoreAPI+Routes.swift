import Foundation
import Hummingbird
import MusterStore
import ServiceLifecycle

extension CoreAPI {
    var routes: [Route] { packageRoutes + enrollmentRoutes }

    /// Takes `count` package creations from the caller's per-token budget, or refuses with 429 (and, when the
    /// request could fit in a minute's budget, when to retry).
    func takeCreations(_ principal: Principal, count: Int = 1) throws {
        guard count <= limiter.capacity else {
            metrics.rateLimited.increment()
            throw APIError(
                .rateLimited,
                "\(count) packages exceed this token's \(limiter.capacity) per minute (--create-rate-limit); "
                    + "split the request")
        }
        if let wait = limiter.take(principal.name, count: count) {
            metrics.rateLimited.increment()
            throw APIError(.rateLimited, "package creation is limited per token; retry in \(wait) s", retryAfter: wait)
        }
    }

    var packageRoutes: [Route] {
        [
            Route(
                method: .post, path: "/api/edge-packages", scope: .configWrite,
                summary: "Create an onboarding package (the token is not returned)",
                responses: [201, 400, 401, 403, 409, 422, 429, 503]
            ) { request, context, principal in
                let principal = principal!
                try takeCreations(principal)
                let body = try PackageRequest(json: try await jsonObject(&request, context: context))
                return try .json(try await packages.create(body, by: principal), status: .created)
            },
            Route(
                method: .post, path: "/api/edge-packages/bulk", scope: .configWrite,
                summary: "Create up to 1,000 packages in one transaction: all of them or, on any bad item, none",
                responses: [201, 400, 401, 403, 409, 422, 429, 503]
            ) { request, context, principal in
                let principal = principal!
                let items = try PackageRequest.bulk(
                    json: try await jsonObject(&request, context: context, upTo: CoreRequestContext.maxBulkUploadSize))
                try takeCreations(principal, count: items.count)
                return try .json(BulkBody(items: try await packages.createMany(items, by: principal)), status: .created)
            },
            Route(
                method: .get, path: "/api/edge-packages", scope: .configRead,
                summary: "List packages, newest first (filters: status, type, poller, site; limit, cursor)",
                responses: [200, 400, 401, 403, 503]
            ) { request, _, _ in
                let query = try Query(
                    request,
                    allowed: ["status", "type", "component_type", "poller", "poller_id", "site", "limit", "cursor"])
                var filter = PackageFilter(limit: try query.limit())
                filter.status = try query.oneOf("status", PackageStatus.self)
                filter.componentType =
                    try query.oneOf("type", ComponentType.self) ?? query.oneOf("component_type", ComponentType.self)
                filter.pollerName = query.string("poller") ?? query.string("poller_id")
                filter.site = query.string("site")
                do { filter.cursor = try query.string("cursor").map(PageCursor.init(token:)) } catch {
                    throw APIError(.badRequest, "cursor is not one this server issued")
                }
                let page = try await packages.list(filter)
                return try .json(ListBody(items: page.items, nextCursor: page.nextCursor))
            },
            Route(
                method: .get, path: "/api/edge-packages/{id}", scope: .configRead, summary: "Show one package",
                responses: [200, 401, 403, 404, 503]
            ) { _, context, _ in
                try .json(try await packages.get(id: try context.parameters.require("id")))
            },
            Route(
                method: .get, path: "/api/edge-packages/{id}/download", scope: .configWrite,
                summary: "Download the package tar.gz once (reveals the join token; Created → Delivered)",
                responses: [200, 401, 403, 404, 409, 410, 503]
            ) { _, context, principal in
                let (name, archive) = try await packages.download(
                    id: try context.parameters.require("id"), by: principal!)
                return Response(
                    status: .ok,
                    headers: [
                        .contentType: "application/gzip", .contentDisposition: "attachment; filename=\"\(name)\"",
                        .cacheControl: "no-store",
                    ],
                    body: .init(byteBuffer: ByteBuffer(bytes: archive))
                )
            },
            Route(
                method: .post, path: "/api/edge-packages/{id}/revoke", scope: .configWrite,
                summary: "Revoke a package (body: optional {\"reason\": TEXT})",
                responses: [200, 400, 401, 403, 404, 409, 503]
            ) { request, context, principal in
                let id = try context.parameters.require("id")
                let body = try await jsonObject(&request, context: context, allowEmpty: true)
                if let unknown = body.keys.first(where: { $0 != "reason" }) {
                    throw APIError(.badRequest, "unknown field '\(unknown)' (fields: reason)")
                }
                var reason: String?
                if let value = body["reason"], !value.isNull {
                    guard let text = value.string, text.utf8.count <= 1024 else {
                        throw APIError(.badRequest, "reason must be a string of at most 1024 bytes")
                    }
                    try PackageRequest.checkPrintable(text, "reason")
                    reason = text
                }
                return try .json(try await packages.revoke(id: id, reason: reason, by: principal!))
            },
            Route(
                method: .get, path: "/api/pollers", scope: .configRead,
                summary: "List pollers with status and last contact", responses: [200, 401, 403, 503]
            ) { request, _, _ in
                _ = try Query(request, allowed: [])
                return try .json(ListBody(items: try await store.pollers().map(PollerView.init), nextCursor: nil))
            },
            Route(
                method: .get, path: "/api/audit", scope: .auditRead,
                summary:
                    "Audit log, newest first (filters: actor, action, target, outcome, since, until; limit, cursor)",
                responses: [200, 400, 401, 403, 503]
            ) { request, _, _ in
                let query = try Query(
                    request,
                    allowed: ["actor", "action", "target", "target_id", "outcome", "since", "until", "limit", "cursor"])
                var filter = AuditFilter(
                    actor: query.string("actor"), action: query.string("action"),
                    targetID: query.string("target") ?? query.string("target_id"),
                    outcome: try query.oneOf("outcome", AuditOutcome.self)?.rawValue,
                    since: try query.time("since"), until: try query.time("until"), limit: try query.limit())
                if let cursor = query.string("cursor") {
                    guard let id = Int64(cursor) else {
                        throw APIError(.badRequest, "cursor is not one this server issued")
                    }
                    filter.beforeID = id
                }
                let page = try await store.auditLog(filter)
                return try .json(ListBody(items: page.items.map(AuditView.init), nextCursor: page.nextCursor))
            },
            Route(
                method: .get, path: "/api/events", scope: .auditRead,
                summary: "Server-sent events from the outbox (resume with Last-Event-ID or ?after=ID)",
                responses: [200, 400, 401, 403, 503]
            ) { request, _, _ in
                try await eventStream(request)
            },
            Route(
                method: .get, path: "/api/trust-bundle", scope: nil,
                summary: "The trust bundle: PEM, or SPIFFE JSON with ?format=spiffe", responses: [200, 400]
            ) { request, _, _ in
                let query = try Query(request, allowed: ["format"])
                switch query.string("format") ?? "pem" {
                case "pem":
                    return Response(
                        status: .ok, headers: [.contentType: "application/x-pem-file"],
                        body: .init(byteBuffer: ByteBuffer(string: try identity.bundle.pem())))
                case "spiffe":
                    return Response(
                        status: .ok, headers: [.contentType: "application/json"],
                        body: .init(byteBuffer: ByteBuffer(bytes: try identity.bundle.spiffeJSON())))
                default: throw APIError(.badRequest, "format must be pem or spiffe")
                }
            },
            Route(
                method: .get, path: "/healthz", scope: nil, summary: "Liveness: the process answers", responses: [200]
            ) { _, _, _ in
                try .json(["status": "ok"])
            },
            Route(
                method: .get, path: "/readyz", scope: nil, summary: "Readiness: the database answers within 2 s",
                responses: [200, 503]
            ) { _, _, _ in
                do {
                    try await withTimeout(.seconds(2)) { try await store.ping() }
                    metrics.databaseUp.set(to: 1.0)
                    return try .json(["status": "ready"])
                } catch {
                    metrics.databaseUp.set(to: 0.0)
                    // Where the database is stays in the log, not in an answer to anonymous callers.
                    logger.warning(
                        "readiness: the database does not answer", metadata: ["database": "\(store.location)"])
                    throw APIError(.unavailable, "the database does not answer")
                }
            },
            Route(method: .get, path: "/metrics", scope: nil, summary: "Prometheus metrics", responses: [200]) {
                _, _, _ in
                Response(
                    status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                    body: .init(byteBuffer: ByteBuffer(string: metrics.text())))
            },
            Route(
                method: .get, path: "/openapi.json", scope: nil, summary: "This API's OpenAPI 3.1 description",
                responses: [200]
            ) { _, _, _ in
                Response(
                    status: .ok, headers: [.contentType: "application/json"],
                    body: .init(byteBuffer: ByteBuffer(bytes: try openAPIDocument())))
            },
        ]
    }

    /// `text/event-stream` of outbox events after the client's cursor (default: from now on).
    func eventStream(_ request: Request) async throws -> Response {
        let query = try Query(request, allowed: ["after"])
        var cursor: Int64
        if let text = request.headers.first(where: { $0.name.canonicalName == "last-event-id" })?.value
            ?? query.string("after")
        {
            guard let value = Int64(text), value >= 0 else {
                throw APIError(.badRequest, "after / Last-Event-ID must be an event id")
            }
            cursor = value
        } else {
            cursor = try await store.lastEventID()
        }
        let hub = self.hub
        let start = cursor
        return Response(
            status: .ok,
            headers: [.contentType: "text/event-stream", .cacheControl: "no-store"],
            body: ResponseBody { writer in
                var cursor = start
                try await writer.write(ByteBuffer(string: ": muster events from \(cursor)\n\n"))
                var lastWrite = ContinuousClock.now
                while !Task.isCancelled && !Task.isShuttingDownGracefully {
                    let seen = hub.generation()
                    let events = try await hub.store.events(after: cursor, limit: 100)
                    if events.isEmpty {
                        if ContinuousClock.now - lastWrite > .seconds(15) {
                            try await writer.write(ByteBuffer(string: ": keep-alive\n\n"))
                            lastWrite = ContinuousClock.now
                        }
                        // Woken by a new event, the keep-alive time, or Core shutting down (so the stream ends now).
                        await withGracefulShutdownHandler {
                            await hub.wait(since: seen, timeout: min(.seconds(15), hub.safetyPoll))
                        } onGracefulShutdown: {
                            hub.ring()
                        }
                        continue
                    }
                    var buffer = ByteBuffer()
                    for event in events {
                        buffer.writeString("id: \(event.id ?? 0)\nevent: \(event.type)\ndata: \(event.payload)\n\n")
                        cursor = event.id ?? cursor
                    }
                    try await writer.write(buffer)
                    lastWrite = ContinuousClock.now
                }
                try await writer.finish(nil)
            }
        )
    }
}

/// Runs `body`, failing with a timeout error if it takes longer than `limit`.
func withTimeout<T: Sendable>(_ limit: Duration, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: limit)
            throw CancellationError()
        }
        defer { group.cancelAll() }
        return try await group.next()!
    }
}

/// The outcomes an audit row can have (the `outcome` filter of `GET /api/audit`).
enum AuditOutcome: String, CaseIterable {
    case ok, denied, late
}
