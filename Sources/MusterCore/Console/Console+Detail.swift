import Foundation
import Hummingbird
import MusterStore

extension Console {
    var detailRoutes: [ConsoleRoute] {
        [
            ConsoleRoute(method: .get, path: "/packages/{id}", scope: .configRead) { request in
                try await detailPage(request, id: try request.context.parameters.require("id"))
            },
            ConsoleRoute(method: .post, path: "/packages/{id}/download", scope: .configWrite) { request in
                let id = try request.context.parameters.require("id")
                do {
                    let (name, archive) = try await packages.download(id: id, by: request.principal)
                    var headers: HTTPFields = [
                        .contentType: "application/gzip", .contentDisposition: "attachment; filename=\"\(name)\"",
                    ]
                    Self.secure(&headers)
                    return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: archive)))
                } catch let error as DomainError where error.code == .gone || error.code == .conflict {
                    return try await detailPage(
                        request, id: id, message: Self.notice(CreateForm.sentence(error.message)),
                        status: .init(code: APIError(error).code.status))
                }
            },
            ConsoleRoute(method: .post, path: "/packages/{id}/revoke", scope: .configWrite) { request in
                let id = try request.context.parameters.require("id")
                var problems: [String: String] = [:]
                let reason = request.form.trimmed("reason")
                if let reason {
                    if reason.utf8.count > 1024 {
                        problems["reason"] = "A reason is at most 1024 bytes."
                    } else if (try? PackageRequest.checkPrintable(reason, "reason")) == nil {
                        problems["reason"] = "The reason holds a control character; use printable text."
                    }
                }
                if request.form["confirm"] != "yes" {
                    problems["confirm"] = "Tick the box to confirm: revoking cannot be undone."
                }
                guard problems.isEmpty else {
                    return try await detailPage(
                        request, id: id, revokeErrors: problems, reason: reason ?? "", status: .badRequest)
                }
                do {
                    _ = try await packages.revoke(id: id, reason: reason, by: request.principal)
                } catch let error as DomainError where error.code == .conflict {
                    return try await detailPage(
                        request, id: id, message: Self.notice(CreateForm.sentence(error.message)), status: .conflict)
                }
                return Self.redirect("/packages/\(id)?revoked=1")
            },
        ]
    }

    func detailPage(
        _ request: ConsoleRequest, id: String, message: HTML = "", revokeErrors: [String: String] = [:],
        reason: String = "", status: HTTPResponse.Status = .ok
    ) async throws -> Response {
        let view = try await packages.get(id: id)
        let history = try await packages.history(id: id)
        func row(_ label: String, _ value: HTML) -> HTML { "<tr><th scope=\"row\">\(label)</th><td>\(value)</td></tr>" }
        func text(_ value: String?) -> HTML { value.map { "\($0)" } ?? "<span class=\"muted\">—</span>" }
        let fields: [HTML] = [
            row("Status", HTML.status(view.status)), row("Type", text(view.componentType)),
            row("SPIFFE ID", "<code>\(view.spiffeID)</code>"), row("Poller", text(view.pollerID)),
            row("Site", text(view.site)),
            row(
                "Selectors",
                view.selectors.isEmpty ? text(nil) : "<code>\(view.selectors.joined(separator: ", "))</code>"),
            row("Notes", view.notes.isEmpty ? text(nil) : "<span class=\"notes\">\(view.notes)</span>"),
            row("Created", "\(HTML.time(view.createdAt)) by \(view.createdBy)"),
            row("Token expires", HTML.time(view.expiresAt)),
            row("Delivered", "\(HTML.time(view.deliveredAt))\(view.deliveredVia.map { " via \($0)" } ?? "")"),
            row("Downloaded", HTML.time(view.downloadedAt)),
            row(
                "Activated",
                "\(HTML.time(view.activatedAt))\(view.activatedFromIP.map { " from \($0)" } ?? "")"
                    + (view.activatedSpiffeID.map { HTML(" as <code>\($0)</code>") } ?? "")),
            row("Expired", HTML.time(view.expiredAt)),
            row(
                "Revoked",
                "\(HTML.time(view.revokedAt))\(view.revokedBy.map { " by \($0)" } ?? "")"
                    + (view.revokeReason.map { HTML(" — <span class=\"reason\">\($0)</span>") } ?? "")),
            row("Package ID", "<code>\(view.id)</code>"),
        ]
        let timeline: [HTML] = history.map { entry in
            let details = (try? JSONDecoder().decode([String: String].self, from: Data(entry.details.utf8))) ?? [:]
            let extra = details.sorted { $0.key < $1.key }.map {
                "\($0.key.replacingOccurrences(of: "_", with: " ")): \($0.value)"
            }
            return """
                <li class="event outcome-\(entry.outcome)"><span class="what">\(Self.describe(entry.action))</span>
                \(HTML.time(entry.at)) · \(entry.actor)\(entry.sourceIP.map { " from \($0)" } ?? "")\(HTML.when(entry.outcome != "ok", " · <strong>\(entry.outcome)</strong>"))
                \(entry.reason.map { HTML("<div class=\"reason\">\($0)</div>") } ?? "")
                \(HTML.when(!extra.isEmpty, "<div class=\"muted\">\(extra.joined(separator: " · "))</div>"))</li>
                """
        }
        let live = view.status != "revoked" && view.status != "expired"
        var actions: [HTML] = []
        if request.can(.configWrite), live {
            func error(_ field: String) -> HTML {
                revokeErrors[field].map { HTML("<p id=\"e-\(field)\" class=\"error\">\($0)</p>") } ?? ""
            }
            actions.append(
                """
                <section class="card danger" aria-labelledby="revoke-title">
                <h2 id="revoke-title">Revoke</h2>
                <form method="post" action="/packages/\(view.id)/revoke">
                <input type="hidden" name="csrf" value="\(request.session.csrf)">
                <div class="field"><label for="r-reason">Reason (kept in the audit log)</label>
                <input id="r-reason" name="reason" value="\(reason)" maxlength="1024"\(HTML.when(revokeErrors["reason"] != nil, " aria-invalid=\"true\" aria-describedby=\"e-reason\""))>\(error("reason"))</div>
                <div class="field"><label class="choice"><input type="checkbox" name="confirm" value="yes"\(HTML.when(revokeErrors["confirm"] != nil, " aria-invalid=\"true\" aria-describedby=\"e-confirm\""))>
                I understand that \(view.name) loses its identity\(HTML.when(view.componentType == "poller", ", and every agent and checker package of this poller is revoked too")).</label>\(error("confirm"))</div>
                <button type="submit" class="danger">Revoke package</button>
                </form>
                </section>
                """)
        }
        let program = view.componentType == "poller" ? "muster-poller" : "muster-agent"
        let fileName = "muster-\(view.componentType)-\(view.name).tar.gz"
        var install = "\(program) install --package \(fileName)"
        install += view.componentType == "poller" ? "\nmuster-poller run" : "\n\(program) run"
        if let join = view.joinCommand { install += "\n\n# or, beside the extracted join-token file:\n\(join)" }
        actions.append(
            """
            <section class="card" aria-labelledby="install-title">
            <h2 id="install-title">Install instructions</h2>
            <pre class="command"><code id="install-steps">\(install)</code></pre>
            <button type="button" class="copy" data-copy="install-steps">Copy instructions</button>
            \(HTML.when(request.can(.configWrite) && view.downloadedAt == nil && live && view.status != "activated", """
                <form method="post" action="/packages/\(view.id)/download">
                <input type="hidden" name="csrf" value="\(request.session.csrf)">
                <button type="submit" id="download">Download package (once)</button></form>
                """))
            </section>
            """)
        let revoked = request.request.uri.queryParameters["revoked"] != nil && view.status == "revoked"
        return page(
            status: status, title: "Package \(view.name)", session: request.session, active: "Packages",
            body: """
                \(message)
                \(HTML.when(revoked, "<p class=\"success\" role=\"status\">Revoked. The poller drops it and refuses its renewals.</p>"))
                <p><a href="/">← Packages</a>\(view.pollerID.map { HTML(" · <a href=\"/?poller=\(Self.percentEncoded($0))\">Packages of poller \($0)</a>") } ?? "")</p>
                <div class="columns" data-package="\(view.id)">
                <section aria-labelledby="fields-title"><h2 id="fields-title">Details</h2>
                <table class="fields">\(fields)</table></section>
                <section aria-labelledby="history-title"><h2 id="history-title">History</h2>
                <ol class="timeline">\(timeline)</ol></section>
                </div>
                \(actions)
                """)
    }

    /// An audit action in words.
    static func describe(_ action: String) -> String {
        switch action {
        case "package.create": return "Created"
        case "package.download": return "Downloaded"
        case "package.pull": return "Pulled by its poller"
        case "package.activate": return "Activation"
        case "package.revoke": return "Revoked"
        case "package.expire": return "Expired"
        case "poller.renew": return "Renewed"
        default: return action
        }
    }
}
