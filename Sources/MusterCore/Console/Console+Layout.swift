import Foundation
import Hummingbird

extension Console {
    /// A whole page: header, navigation for what the session may see, sign-out, then `body`.
    func page(
        status: HTTPResponse.Status = .ok, title: String, session: ConsoleSession?, active: String, body: HTML,
        script: Bool = true
    ) -> Response {
        var nav: [HTML] = []
        if let session {
            var links: [(String, String, Scope)] = [
                ("/", "Packages", .configRead), ("/pollers", "Pollers", .configRead),
            ]
            links += [("/audit", "Audit", .auditRead), ("/events", "Events", .auditRead)]
            for (href, label, scope) in links where session.principal.has(scope) {
                nav.append(
                    "<li><a href=\"\(href)\"\(HTML.when(active == label, " aria-current=\"page\""))>\(label)</a></li>")
                if label == "Pollers" {
                    let count = Self.pendingBadge ?? 0
                    nav.append(
                        """
                        <li><a href="/enrollments"\(HTML.when(active == "Approvals", " aria-current=\"page\""))>Approvals\(
                            HTML.when(count > 0, " <span class=\"badge\" aria-label=\"\(count) pending\">\(count)</span>"))</a></li>
                        """)
                }
            }
            nav.append(
                """
                <li class="who"><span>\(session.principal.name)</span>
                <form method="post" action="/logout"><input type="hidden" name="csrf" value="\(session.csrf)">
                <button type="submit" class="link">Sign out</button></form></li>
                """)
        }
        return Self.html(
            """
            <!doctype html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>\(title) · Muster</title>
            <link rel="stylesheet" href="/assets/console.css">
            \(HTML.when(script, "<script src=\"/assets/console.js\" defer></script>"))
            </head>
            <body>
            <a class="skip" href="#main">Skip to content</a>
            <header class="top"><span class="brand">Muster</span>
            <nav aria-label="Main"><ul>\(nav)</ul></nav></header>
            <main id="main" tabindex="-1">
            <h1>\(title)</h1>
            \(body)
            </main>
            </body>
            </html>
            """, status: status)
    }

    var layoutRoutes: [ConsoleRoute] {
        [
            ConsoleRoute(method: .get, path: "/login", scope: nil) { request in
                if request.sessionOrNil != nil {
                    return Self.redirect(Self.localPath(request.request.uri.queryParameters["next"].map(String.init)))
                }
                return loginPage(request, message: nil, status: .ok)
            },
            ConsoleRoute(method: .post, path: "/login", scope: nil) { request in
                // The sign-in form is tied to the browser that loaded it (double-submit cookie), so another site
                // cannot sign this browser in under a token of its choosing.
                guard let expected = Self.cookieValue(Self.loginCookie, in: request.request),
                    ConsoleSessions.matches(request.form["csrf"], expected)
                else {
                    return loginPage(
                        request, message: "The sign-in form expired; it has been reloaded. Paste the token again.",
                        status: .forbidden)
                }
                guard let token = request.form.trimmed("token") else {
                    return loginPage(request, message: "Paste an operator token to sign in.", status: .badRequest)
                }
                do {
                    let (cookie, _) = try await sessions.signIn(token: token, from: request.context.remoteIP)
                    var response = Self.redirect(Self.localPath(request.form["next"]))
                    response.headers[values: .setCookie] = [
                        Self.setCookie(Self.cookie, cookie, path: "/", secure: Self.overTLS(request.request)),
                        Self.clearCookie(Self.loginCookie, path: "/login"),
                    ]
                    return response
                } catch let error as DomainError where error.code == .unauthenticated {
                    return loginPage(
                        request, message: "That token is not recognized (unknown or revoked).", status: .unauthorized)
                }
            },
            ConsoleRoute(method: .post, path: "/logout", scope: .configRead) { request in
                try await sessions.signOut(request.session)
                var response = Self.redirect("/login")
                response.headers[.setCookie] = Self.clearCookie(Self.cookie, path: "/")
                return response
            },
            ConsoleRoute(method: .get, path: "/assets/console.css", scope: nil) { _ in
                Self.asset(ConsoleAssets.stylesheet, type: "text/css; charset=utf-8")
            },
            ConsoleRoute(method: .get, path: "/assets/console.js", scope: nil) { _ in
                Self.asset(ConsoleAssets.script, type: "text/javascript; charset=utf-8")
            },
        ]
    }

    func loginPage(_ request: ConsoleRequest, message: String?, status: HTTPResponse.Status) -> Response {
        let csrf = ConsoleSessions.randomText()
        let next = Self.localPath(request.form["next"] ?? request.request.uri.queryParameters["next"].map(String.init))
        var response = page(
            status: status, title: "Sign in", session: nil, active: "",
            body: """
                <p>Sign in with an operator token (the admin token is in <code>DATA_DIR/admin.token</code>; mint others
                with <code>muster-core token create --scopes …</code>). What you can see and do follows its scopes.</p>
                <form method="post" action="/login" class="card narrow">
                <input type="hidden" name="csrf" value="\(csrf)">
                <input type="hidden" name="next" value="\(next)">
                <div class="field">
                <label for="token">Operator token</label>
                <input id="token" name="token" type="password" autocomplete="current-password" required
                 aria-describedby="token-help\(HTML.when(message != nil, " token-error"))"\(HTML.when(message != nil, " aria-invalid=\"true\"")) autofocus>
                <p id="token-help" class="help">Starts with <code>mot_</code>. It is kept by Core only as a hash; the
                browser gets a session cookie instead.</p>
                \(message.map { HTML("<p id=\"token-error\" class=\"error\" role=\"alert\">\($0)</p>") } ?? "")
                </div>
                <button type="submit" class="primary">Sign in</button>
                </form>
                """, script: false)
        response.headers[values: .setCookie] = [
            Self.setCookie(Self.loginCookie, csrf, path: "/login", secure: Self.overTLS(request.request))
        ]
        return response
    }

    static func asset(_ text: String, type: String) -> Response {
        var headers: HTTPFields = [.contentType: type]
        secure(&headers)
        headers[.cacheControl] = "no-cache"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    var routes: [ConsoleRoute] { layoutRoutes + packageRoutes + detailRoutes + enrollmentRoutes + fleetRoutes }
}
