import Foundation
import Hummingbird
import MusterStore

extension Console {
    var packageRoutes: [ConsoleRoute] {
        [
            ConsoleRoute(method: .get, path: "/", scope: .configRead) { request in
                try await packagesPage(request, create: nil)
            },
            ConsoleRoute(method: .post, path: "/packages", scope: .configWrite) { request in
                var form = CreateForm(request.form)
                guard let body = form.validated() else {
                    return try await packagesPage(request, create: form, status: .badRequest)
                }
                if let wait = api.limiter.take(request.principal.name) {
                    form.formError = "Package creation is limited per token; try again in \(wait) s."
                    return try await packagesPage(request, create: form, status: .tooManyRequests)
                }
                do {
                    let (view, joinLine) = try await packages.createForHandOver(body, by: request.principal)
                    return handOverPage(request, view, joinLine: joinLine)
                } catch let error as DomainError where error.code != .unavailable && error.code != .internalFailure {
                    form.place(error)
                    return try await packagesPage(
                        request, create: form, status: .init(code: APIError(error).code.status))
                }
            },
        ]
    }

    /// Reads the filters; a bad value is reported on the page and that filter left out.
    func filter(from request: ConsoleRequest) -> (PackageFilter, [String]) {
        var filter = PackageFilter(limit: 50)
        var problems: [String] = []
        if let text = request.query("status") {
            if let status = PackageStatus(rawValue: text) {
                filter.status = status
            } else {
                problems.append("Unknown status '\(text)'.")
            }
        }
        if let text = request.query("type") {
            if let type = ComponentType(rawValue: text) {
                filter.componentType = type
            } else {
                problems.append("Unknown type '\(text)'.")
            }
        }
        filter.pollerName = request.query("poller")
        filter.site = request.query("site")
        filter.nameContains = request.query("q")
        if let text = request.query("cursor") {
            if let cursor = try? PageCursor(token: text) {
                filter.cursor = cursor
            } else {
                problems.append("That page link is not one this server made; showing the first page.")
            }
        }
        return (filter, problems)
    }

    func packagesPage(_ request: ConsoleRequest, create: CreateForm?, status: HTTPResponse.Status = .ok) async throws
        -> Response
    {
        let (filter, problems) = filter(from: request)
        let page = try await packages.list(filter)
        let counts = try await packages.counts(filter)
        let choices = request.can(.configWrite) ? try await packages.pollerChoices() : []
        let total = counts.values.reduce(0, +)
        let query = request.request.uri.queryParameters
        func link(status: String?) -> String {
            var items: [String] = []
            if let status { items.append("status=\(status)") }
            for name in ["type", "poller", "site", "q"] {
                if let value = query[Substring(name)], !value.isEmpty {
                    items.append("\(name)=\(Self.percentEncoded(String(value)))")
                }
            }
            return "/" + (items.isEmpty ? "" : "?" + items.joined(separator: "&"))
        }
        let countLinks: [HTML] =
            [
                "<li><a href=\"\(link(status: nil))\"\(HTML.when(filter.status == nil, " aria-current=\"true\""))>All <span class=\"count\" data-count=\"all\">\(total)</span></a></li>"
            ]
            + PackageStatus.allCases.map { status in
                "<li><a href=\"\(link(status: status.rawValue))\"\(HTML.when(filter.status == status, " aria-current=\"true\""))>\(status.rawValue) <span class=\"count\" data-count=\"\(status.rawValue)\">\(counts[status] ?? 0)</span></a></li>"
            }
        let rows: [HTML] = page.items.map { item in
            """
            <tr data-id="\(item.id)">
            <td><a href="/packages/\(item.id)">\(item.name)</a></td>
            <td>\(item.componentType)</td>
            <td>\(HTML.status(item.status))</td>
            <td>\(item.pollerID ?? "—")</td>
            <td>\(item.site)</td>
            <td>\(HTML.time(item.createdAt))</td>
            <td>\(HTML.time(item.expiresAt))</td>
            </tr>
            """
        }
        var nextLink: HTML = ""
        if let cursor = page.nextCursor {
            let base = link(status: filter.status?.rawValue)
            nextLink =
                "<p class=\"pager\"><a href=\"\(base + (base.contains("?") ? "&" : "?"))cursor=\(cursor)\">Older packages →</a></p>"
        }
        func selected(_ name: String, _ value: String) -> HTML {
            HTML.when(query[Substring(name)].map(String.init) == value, " selected")
        }
        let statusOptions: [HTML] = PackageStatus.allCases.map {
            "<option value=\"\($0.rawValue)\"\(selected("status", $0.rawValue))>\($0.rawValue)</option>"
        }
        let typeOptions: [HTML] = ComponentType.allCases.map {
            "<option value=\"\($0.rawValue)\"\(selected("type", $0.rawValue))>\($0.rawValue)</option>"
        }
        let drawer =
            request.can(.configWrite)
            ? createDrawer(request, create ?? CreateForm(defaultType: choices.isEmpty ? "poller" : "agent"), choices)
            : ""
        return self.page(
            status: status, title: "Packages", session: request.session, active: "Packages",
            body: """
                \(problems.map { Self.notice($0) })
                \(drawer)
                <nav aria-label="Packages by status"><ul class="counts">\(countLinks)</ul></nav>
                <form method="get" action="/" class="filters" role="search" aria-label="Filter packages">
                <div class="field"><label for="f-q">Name contains</label>
                <input id="f-q" name="q" type="search" value="\(query["q"].map(String.init))"></div>
                <div class="field"><label for="f-status">Status</label>
                <select id="f-status" name="status"><option value="">any</option>\(statusOptions)</select></div>
                <div class="field"><label for="f-type">Type</label>
                <select id="f-type" name="type"><option value="">any</option>\(typeOptions)</select></div>
                <div class="field"><label for="f-poller">Poller</label>
                <input id="f-poller" name="poller" value="\(query["poller"].map(String.init))"></div>
                <div class="field"><label for="f-site">Site</label>
                <input id="f-site" name="site" value="\(query["site"].map(String.init))"></div>
                <button type="submit">Filter</button> <a href="/">Clear</a>
                </form>
                <p id="live" class="live" aria-live="polite" data-stream="/events/stream"></p>
                <table class="packages" aria-label="Packages, newest first">
                <thead><tr><th scope="col">Name</th><th scope="col">Type</th><th scope="col">Status</th>
                <th scope="col">Poller</th><th scope="col">Site</th><th scope="col">Created</th>
                <th scope="col">Token expires</th></tr></thead>
                <tbody>\(rows.isEmpty ? "<tr><td colspan=\"7\" class=\"muted\">No packages match.</td></tr>" : rows.joined())</tbody>
                </table>
                \(nextLink)
                """)
    }

    func createDrawer(_ request: ConsoleRequest, _ form: CreateForm, _ choices: [PollerChoice]) -> HTML {
        func error(_ field: String) -> HTML {
            guard let message = form.errors[field] else { return "" }
            return "<p id=\"e-\(field)\" class=\"error\">\(message)</p>"
        }
        func invalid(_ field: String, help: String? = nil) -> HTML {
            let described = [help, form.errors[field] == nil ? nil : "e-\(field)"].compactMap { $0 }
            return HTML.when(form.errors[field] != nil, " aria-invalid=\"true\"")
                + HTML.when(!described.isEmpty, " aria-describedby=\"\(described.joined(separator: " "))\"")
        }
        let types: [HTML] = ComponentType.allCases.map { type in
            """
            <label class="choice"><input type="radio" name="component_type" value="\(type.rawValue)"\(HTML.when(form.type == type.rawValue, " checked"))> \(type.rawValue)</label>
            """
        }
        let now = Clock.nowMillis()
        let pollerOptions: [HTML] = choices.map { choice in
            let heard = choice.lastContactAt.map { "last contact \(Self.ago(now - $0))" } ?? "not attested yet"
            return
                "<option value=\"\(choice.name)\"\(HTML.when(form.poller == choice.name, " selected"))>\(choice.name) · site \(choice.site) · \(heard)</option>"
        }
        let ttlOptions: [HTML] = CreateForm.ttlPresets.map { preset in
            "<option value=\"\(preset.seconds)\"\(HTML.when(form.ttl == preset.seconds, " selected"))>\(preset.label)</option>"
        }
        let open = !form.errors.isEmpty || form.formError != nil
        return """
            <details class="drawer" id="create"\(HTML.when(open, " open"))>
            <summary class="primary">New package</summary>
            <form method="post" action="/packages" class="card" novalidate>
            <h2>New package</h2>
            \(form.formError.map { HTML("<p class=\"error\" role=\"alert\">\($0)</p>") } ?? "")
            \(HTML.when(open && form.formError == nil, "<p class=\"error\" role=\"alert\">Some fields need attention; nothing was created.</p>"))
            <input type="hidden" name="csrf" value="\(request.session.csrf)">
            <div class="field"><label for="c-name">Name</label>
            <input id="c-name" name="name" value="\(form.name)" required maxlength="63" autocomplete="off"\(invalid("name", help: "c-name-help"))>
            <p id="c-name-help" class="help">a–z, 0–9, '.', '_', '-'; it becomes part of the SPIFFE ID.</p>\(error("name"))</div>
            <fieldset class="field"\(invalid("component_type"))><legend>Type</legend>\(types)\(error("component_type"))</fieldset>
            <div class="field"><label for="c-poller">Poller (agents and checkers)</label>
            <select id="c-poller" name="poller_id"\(invalid("poller_id", help: "c-poller-help"))><option value="">— none —</option>\(pollerOptions)</select>
            <p id="c-poller-help" class="help">The poller the machine joins through; it never reaches Core itself.</p>\(error("poller_id"))</div>
            <div class="field"><label for="c-site">Site</label>
            <input id="c-site" name="site" value="\(form.site)" maxlength="128"\(invalid("site"))>\(error("site"))</div>
            <div class="field"><label for="c-ttl">Join token valid for</label>
            <select id="c-ttl" name="ttl_seconds"\(invalid("ttl_seconds"))>\(ttlOptions)</select>\(error("ttl_seconds"))</div>
            <div class="field"><label for="c-selectors">Workload selectors, one a line</label>
            <textarea id="c-selectors" name="selectors" rows="2"\(invalid("selectors", help: "c-selectors-help"))>\(form.selectors)</textarea>
            <p id="c-selectors-help" class="help"><code>unix:uid:N</code>, <code>unix:gid:N</code>, <code>unix:user:NAME</code> or \
            <code>unix:group:NAME</code>: who on the machine may fetch the identity; none means the agent's own user.</p>\(error("selectors"))</div>
            <div class="field"><label for="c-notes">Notes</label>
            <textarea id="c-notes" name="notes" rows="2"\(invalid("notes"))>\(form.notes)</textarea>\(error("notes"))</div>
            <button type="submit" class="primary">Create package</button>
            </form>
            </details>
            """
    }

    /// The page right after a create: the one download and, for agents and checkers, the join line with its token.
    func handOverPage(_ request: ConsoleRequest, _ view: PackageView, joinLine: String?) -> Response {
        let join: HTML =
            joinLine.map { line in
                """
                <section class="card" aria-labelledby="join-title">
                <h2 id="join-title">One-line join command</h2>
                <p class="warning" role="note"><strong>Shown once.</strong> It holds the join token; copy it now. It
                is not stored in this page's history and Core will not show it again.</p>
                <pre class="command"><code id="join-command">\(line)</code></pre>
                <button type="button" class="copy" data-copy="join-command">Copy command</button>
                <p class="help">Run it on the edge machine as the user that will run the agent; add
                <code>--dir DIR</code> to choose where the identity is kept.</p>
                </section>
                """
            } ?? ""
        return page(
            status: .created, title: "Package created", session: request.session, active: "Packages",
            body: """
                <p class="success" role="status">Created \(view.componentType) package <strong>\(view.name)</strong>
                for <code>\(view.spiffeID)</code>; its join token works once, until \(HTML.time(view.expiresAt)).</p>
                <section class="card" aria-labelledby="download-title">
                <h2 id="download-title">Download the package</h2>
                <p>The archive holds the join token, the trust bundle and install notes. It can be downloaded once.</p>
                <form method="post" action="/packages/\(view.id)/download">
                <input type="hidden" name="csrf" value="\(request.session.csrf)">
                <button type="submit" class="primary" id="download">Download \(view.componentType) package</button>
                </form>
                </section>
                \(join)
                <p><a href="/packages/\(view.id)">View the package</a> · <a href="/">Back to packages</a></p>
                """)
    }

    /// "5 s ago", "3 min ago", "2 h ago", "4 d ago".
    static func ago(_ millis: Int64) -> String {
        let seconds = max(0, millis / 1000)
        switch seconds {
        case ..<60: return "\(seconds) s ago"
        case ..<3600: return "\(seconds / 60) min ago"
        case ..<86_400: return "\(seconds / 3600) h ago"
        default: return "\(seconds / 86_400) d ago"
        }
    }
}
