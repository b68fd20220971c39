import Foundation
import HTTPTypes
import Hummingbird
import Logging
import MusterStore

/// One console page or form action: its method, path, the scope it needs (nil: no session needed) and handler.
struct ConsoleRoute: Sendable {
    let method: HTTPRequest.Method
    let path: String
    let scope: Scope?
    let handler: @Sendable (ConsoleRequest) async throws -> Response
}

/// What a console handler gets: the request, its form (POST), the session (nil only on public routes).
struct ConsoleRequest: Sendable {
    let request: Request
    let context: CoreRequestContext
    let form: ConsoleForm
    let sessionOrNil: ConsoleSession?

    var session: ConsoleSession { sessionOrNil! }
    var principal: Principal { session.principal }
    func can(_ scope: Scope) -> Bool { sessionOrNil?.principal.has(scope) ?? false }

    /// A query parameter as a filter reads it: nil when absent or empty, at most 256 characters.
    func query(_ name: String) -> String? {
        request.uri.queryParameters[Substring(name)].map(String.init).flatMap {
            $0.isEmpty ? nil : String($0.prefix(256))
        }
    }
}

/// The operator's web console (`/`, `/login`, `/packages/{id}`, `/pollers`, `/enrollments`, `/audit`, `/events`): server-rendered
/// HTML over the same domain services as the API; a session cookie and a CSRF token on every state-changing form.
struct Console: Sendable {
    let api: CoreAPI
    let sessions: ConsoleSessions
    let errors: ErrorMiddleware
    static let cookie = "muster_session"
    static let loginCookie = "muster_login"

    var packages: PackageService { api.packages }

    func add(to router: Router<CoreRequestContext>) {
        for route in routes {
            router.on(RouterPath(route.path), method: route.method) { request, context in
                await respond(route, request, context)
            }
        }
    }

    /// Runs a route behind its gate: the session, its scope and, for POST, the CSRF token; failures become pages.
    func respond(_ route: ConsoleRoute, _ request: Request, _ context: CoreRequestContext) async -> Response {
        var request = request
        do {
            let form =
                request.method == .post
                ? try await ConsoleForm(&request, context: context) : ConsoleForm(fields: [:])
            var session: ConsoleSession?
            if let cookie = Self.cookieValue(Self.cookie, in: request) {
                session = try await sessions.resume(cookie: cookie, from: context.remoteIP)
            }
            if let scope = route.scope {
                guard let session else { return signInFirst(request) }
                guard session.principal.has(scope) else {
                    return page(
                        status: .forbidden, title: "Not allowed", session: session, active: "",
                        body: Self.notice(
                            "This needs the scope \(scope.rawValue); your token has "
                                + session.principal.scopes.map(\.rawValue).sorted().joined(separator: ", ") + "."))
                }
                if request.method == .post, !ConsoleSessions.matches(form["csrf"], session.csrf) {
                    return page(
                        status: .forbidden, title: "Form expired", session: session, active: "",
                        body: Self.notice(
                            "The form's security token is missing or wrong, so nothing was changed. Reload the page and try again."
                        ))
                }
            }
            // Only pages show the navigation: not the event stream, not the assets.
            let showsNavigation = route.path != "/events/stream" && !route.path.hasPrefix("/assets")
            let badge =
                showsNavigation && session?.principal.has(.configRead) == true
                ? try? await packages.pendingEnrollmentCount() : nil
            return try await Self.$pendingBadge.withValue(badge) {
                try await route.handler(
                    ConsoleRequest(request: request, context: context, form: form, sessionOrNil: session))
            }
        } catch {
            let refusal = errors.map(error, request: request)
            return page(
                status: .init(code: refusal.code.status), title: "Something went wrong", session: nil, active: "",
                body: Self.notice(refusal.message))
        }
    }

    /// No (live) session: a page goes to sign-in and comes back; a form goes back to the page it was on.
    func signInFirst(_ request: Request) -> Response {
        var next = request.uri.path
        if request.method == .post {
            next =
                next.hasSuffix("/revoke") || next.hasSuffix("/download")
                ? String(next.split(separator: "/").dropLast().joined(separator: "/")) : "/"
            if !next.hasPrefix("/") { next = "/" + next }
        } else if let query = request.uri.query, !query.isEmpty {
            next += "?" + query
        }
        var response = Self.redirect("/login?next=" + Self.percentEncoded(next))
        response.headers[.setCookie] = Self.clearCookie(Self.cookie, path: "/")
        return response
    }

    // MARK: responses

    /// The headers every console answer carries: no script but our own, no framing, no referrer, no caching.
    static func secure(_ headers: inout HTTPFields) {
        headers[.consoleCSP] =
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
            + "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        headers[.consoleReferrerPolicy] = "no-referrer"
        headers[.consoleContentTypeOptions] = "nosniff"
        headers[.cacheControl] = "no-store"
        headers[.consoleOpenerPolicy] = "same-origin"
    }

    static func html(_ body: HTML, status: HTTPResponse.Status = .ok) -> Response {
        var headers: HTTPFields = [.contentType: "text/html; charset=utf-8"]
        secure(&headers)
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: body.text)))
    }

    static func redirect(_ location: String) -> Response {
        var headers: HTTPFields = [.location: location]
        secure(&headers)
        return Response(status: .seeOther, headers: headers)
    }

    static func notice(_ message: String) -> HTML { "<p class=\"notice\" role=\"alert\">\(message)</p>" }

    // MARK: cookies

    static func cookieValue(_ name: String, in request: Request) -> String? {
        for header in request.headers[values: .cookie] {
            for part in header.split(separator: ";") {
                let pair = part.trimmingCharacters(in: .whitespaces)
                if pair.hasPrefix(name + "=") { return String(pair.dropFirst(name.count + 1)) }
            }
        }
        return nil
    }

    /// `HttpOnly; SameSite=Strict`, and `Secure` when the browser reached Core over TLS (directly or via a proxy
    /// that says so in `X-Forwarded-Proto`).
    static func setCookie(_ name: String, _ value: String, path: String, secure: Bool) -> String {
        "\(name)=\(value); Path=\(path); HttpOnly; SameSite=Strict" + (secure ? "; Secure" : "")
    }

    static func clearCookie(_ name: String, path: String) -> String {
        "\(name)=; Path=\(path); Max-Age=0; HttpOnly; SameSite=Strict"
    }

    static func overTLS(_ request: Request) -> Bool {
        request.uri.scheme == .https
            || request.headers[.consoleForwardedProto]?.lowercased() == "https"
    }

    static func percentEncoded(_ text: String) -> String {
        var allowed = CharacterSet.urlQueryAllowed
        allowed.remove(charactersIn: "&=+?#")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? "/"
    }

    /// A `next` target is a path on this server (never `//host` or a scheme), or the packages page.
    static func localPath(_ text: String?) -> String {
        guard let text, text.hasPrefix("/"), !text.hasPrefix("//"), !text.hasPrefix("/\\"),
            !text.contains(where: { $0.isNewline || $0 == "\\" }), text.utf8.count <= 512
        else { return "/" }
        return text
    }
}

/// An `application/x-www-form-urlencoded` body, refused when it is anything else.
struct ConsoleForm: Sendable {
    let fields: [String: [String]]

    init(fields: [String: [String]]) { self.fields = fields }

    init(_ request: inout Request, context: CoreRequestContext) async throws {
        let buffer = try await request.collectBody(upTo: context.maxUploadSize)
        let type = request.headers[.contentType]?.lowercased() ?? ""
        guard buffer.readableBytes == 0 || type.hasPrefix("application/x-www-form-urlencoded") else {
            throw APIError(.badRequest, "console forms are sent as application/x-www-form-urlencoded")
        }
        var fields: [String: [String]] = [:]
        for pair in String(buffer: buffer).split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ text: Substring) -> String {
                String(text).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? ""
            }
            fields[decode(parts[0]), default: []].append(parts.count > 1 ? decode(parts[1]) : "")
        }
        self.fields = fields
    }

    subscript(_ name: String) -> String? { fields[name]?.first }

    /// The field's text with surrounding space trimmed; nil when empty.
    func trimmed(_ name: String) -> String? {
        guard let text = self[name]?.trimmingCharacters(in: .whitespacesAndNewlines), !text.isEmpty else { return nil }
        return text
    }
}

extension HTTPField.Name {
    // Spelled out: not every one of these is among swift-http-types' named fields.
    static let consoleCSP = Self("Content-Security-Policy")!
    static let consoleReferrerPolicy = Self("Referrer-Policy")!
    static let consoleContentTypeOptions = Self("X-Content-Type-Options")!
    static let consoleOpenerPolicy = Self("Cross-Origin-Opener-Policy")!
    static let consoleForwardedProto = Self("X-Forwarded-Proto")!
}
