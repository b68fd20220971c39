import Foundation
import Hummingbird
import MusterStore

extension CoreAPI {
    var enrollmentRoutes: [Route] {
        [
            Route(
                method: .get, path: "/api/enrollments", scope: .configRead,
                summary: "List self-enrollment requests, newest first (filters: status, poller; limit, cursor)",
                responses: [200, 400, 401, 403, 503]
            ) { request, _, _ in
                let query = try Query(request, allowed: ["status", "poller", "poller_id", "limit", "cursor"])
                var filter = EnrollmentFilter(limit: try query.limit())
                filter.status = try query.oneOf("status", EnrollmentStatus.self)
                filter.pollerName = query.string("poller") ?? query.string("poller_id")
                do { filter.cursor = try query.string("cursor").map(PageCursor.init(token:)) } catch {
                    throw APIError(.badRequest, "cursor is not one this server issued")
                }
                let page = try await packages.enrollments(filter)
                return try .json(ListBody(items: page.items, nextCursor: page.nextCursor))
            },
            Route(
                method: .get, path: "/api/enrollments/{id}", scope: .configRead,
                summary: "Show one enrollment request with its claimed and observed facts and warnings",
                responses: [200, 401, 403, 404, 503]
            ) { _, context, _ in
                try .json(try await packages.enrollment(id: try context.parameters.require("id")))
            },
            Route(
                method: .post, path: "/api/enrollments/{id}/approve", scope: .configWrite,
                summary:
                    "Approve a pending request: its key gets an identity under the relaying poller "
                    + "(body: name, site, selectors, notes, revoke_previous)",
                responses: [200, 400, 401, 403, 404, 409, 422, 503]
            ) { request, context, principal in
                let id = try context.parameters.require("id")
                let approval = try EnrollmentApproval(
                    json: try await jsonObject(&request, context: context, allowEmpty: true))
                return try .json(try await packages.approveEnrollment(id: id, approval, by: principal!))
            },
            Route(
                method: .post, path: "/api/enrollments/{id}/deny", scope: .configWrite,
                summary: "Deny a pending request (body: {\"reason\": TEXT}, required; the agent is shown it)",
                responses: [200, 400, 401, 403, 404, 409, 503]
            ) { request, context, principal in
                let id = try context.parameters.require("id")
                let body = try await jsonObject(&request, context: context)
                if let unknown = body.keys.first(where: { $0 != "reason" }) {
                    throw APIError(.badRequest, "unknown field '\(unknown)' (fields: reason)")
                }
                let reason = try PackageRequest.string(body, "reason", default: "", maxLength: 1024)
                guard !reason.isEmpty else { throw APIError(.badRequest, "reason is required: the agent is shown it") }
                return try .json(try await packages.denyEnrollment(id: id, reason: reason, by: principal!))
            },
        ]
    }
}

extension EnrollmentApproval {
    static let fields: Set<String> = ["name", "site", "selectors", "notes", "revoke_previous"]

    /// Checks an approval body field by field; the first problem is the answer.
    init(json object: [String: JSONValue]) throws {
        if let unknown = object.keys.first(where: { !Self.fields.contains($0) }) {
            throw APIError(
                .badRequest, "unknown field '\(unknown)' (fields: \(Self.fields.sorted().joined(separator: ", ")))")
        }
        var name: String?
        if let value = object["name"], !value.isNull {
            guard let text = value.string else { throw APIError(.badRequest, "name must be a string") }
            name = text
        }
        let site = try PackageRequest.string(object, "site", default: "default", maxLength: 128)
        guard !site.isEmpty else { throw APIError(.badRequest, "site must not be empty") }
        var revoke = false
        if let value = object["revoke_previous"], !value.isNull {
            guard case .bool(let flag) = value else {
                throw APIError(.badRequest, "revoke_previous must be true or false")
            }
            revoke = flag
        }
        self.init(
            name: name, site: site, selectors: try PackageRequest.selectors(object["selectors"]),
            notes: try PackageRequest.string(object, "notes", default: "", maxLength: 4096), revokePrevious: revoke)
    }
}
