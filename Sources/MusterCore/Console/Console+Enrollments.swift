import Foundation
import Hummingbird
import MusterIdentity
import MusterStore

extension Console {
    /// The number of pending enrollments for the navigation's badge, read once per request by the gate.
    @TaskLocal static var pendingBadge: Int?

    var enrollmentRoutes: [ConsoleRoute] {
        [
            ConsoleRoute(method: .get, path: "/enrollments", scope: .configRead) { request in
                try await enrollmentsPage(request)
            },
            ConsoleRoute(method: .post, path: "/enrollments/{id}/approve", scope: .configWrite) { request in
                let id = try request.context.parameters.require("id")
                var problems: [String: String] = [:]
                let name = request.form.trimmed("name")
                if let name, (try? MusterIDs.checkName(name)) == nil {
                    problems["name"] = "A name holds only a-z, 0-9, '.', '_' and '-' (1 to 63 characters)."
                }
                let site = request.form.trimmed("site") ?? "default"
                if site.utf8.count > 128 || (try? PackageRequest.checkPrintable(site, "site")) == nil {
                    problems["site"] = "A site is printable text of at most 128 bytes."
                }
                if request.form["compared"] != "yes" {
                    problems["compared"] = "Tick the box once the installer has read you the same fingerprint."
                }
                guard problems.isEmpty else {
                    return try await enrollmentsPage(request, errors: [id: problems], status: .badRequest)
                }
                do {
                    _ = try await packages.approveEnrollment(
                        id: id,
                        EnrollmentApproval(
                            name: name, site: site, revokePrevious: request.form["revoke_previous"] == "yes"),
                        by: request.principal)
                } catch let error as DomainError where [.conflict, .invalid, .unprocessable].contains(error.code) {
                    return try await enrollmentsPage(
                        request, message: Self.notice(CreateForm.sentence(error.message)),
                        status: .init(code: APIError(error).code.status))
                }
                return Self.redirect("/enrollments?done=approved")
            },
            ConsoleRoute(method: .post, path: "/enrollments/{id}/deny", scope: .configWrite) { request in
                let id = try request.context.parameters.require("id")
                let reason = request.form.trimmed("reason")
                var problems: [String: String] = [:]
                if reason == nil {
                    problems["reason"] = "Give a reason: the installer is shown it."
                } else if let reason,
                    reason.utf8.count > 1024 || (try? PackageRequest.checkPrintable(reason, "reason")) == nil
                {
                    problems["reason"] = "A reason is printable text of at most 1024 bytes."
                }
                guard problems.isEmpty, let reason else {
                    return try await enrollmentsPage(request, errors: [id: problems], status: .badRequest)
                }
                do {
                    _ = try await packages.denyEnrollment(id: id, reason: reason, by: request.principal)
                } catch let error as DomainError where error.code == .conflict {
                    return try await enrollmentsPage(
                        request, message: Self.notice(CreateForm.sentence(error.message)), status: .conflict)
                }
                return Self.redirect("/enrollments?done=denied")
            },
        ]
    }

    /// Pending requests first, each with what the machine claims beside what its poller saw, the key's
    /// fingerprint, Core's warnings and (for writers) approve and deny; decided ones below.
    func enrollmentsPage(
        _ request: ConsoleRequest, message: HTML = "", errors: [String: [String: String]] = [:],
        status: HTTPResponse.Status = .ok
    ) async throws -> Response {
        let pending = try await packages.enrollments(EnrollmentFilter(status: .pending, limit: 100)).items
        let decided = try await packages.enrollments(EnrollmentFilter(decidedOnly: true, limit: 100)).items
        let done = request.query("done")
        let notice: HTML =
            done == "approved"
            ? "<p class=\"success\" role=\"status\">Approved. The poller issues the identity when the machine next asks.</p>"
            : done == "denied" ? "<p class=\"success\" role=\"status\">Denied. The machine is told the reason.</p>" : ""
        let cards: [HTML] = pending.map { card($0, request: request, errors: errors[$0.id] ?? [:]) }
        let rows: [HTML] = decided.map { item in
            """
            <tr><td>\(HTML.status(item.status))</td><td>\(item.claimed.hostname)</td><td>\(item.pollerID)</td>
            <td>\(item.spiffeID.map { HTML("<code>\($0)</code>") } ?? HTML("<span class=\"muted\">—</span>"))</td>
            <td>\(item.decidedBy ?? "—")\(item.decisionReason.map { HTML(" — <span class=\"reason\">\($0)</span>") } ?? "")</td>
            <td>\(HTML.time(item.decidedAt))</td></tr>
            """
        }
        return page(
            status: status, title: "Approvals", session: request.session, active: "Approvals",
            body: """
                \(message)\(notice)
                <p>Machines that enrolled without a package wait here. Before approving, have the installer read the
                fingerprint <code>muster-agent enroll</code> printed and compare it with the one shown.</p>
                <h2>Pending (\(pending.count))</h2>
                \(pending.isEmpty ? HTML("<p class=\"muted\">No request is waiting.</p>") : HTML(joining: cards))
                <h2>Decided</h2>
                \(decided.isEmpty ? HTML("<p class=\"muted\">Nothing decided yet.</p>") : HTML("""
                    <table class="list"><thead><tr><th scope="col">Status</th><th scope="col">Host</th>
                    <th scope="col">Poller</th><th scope="col">Identity</th><th scope="col">Decided by</th>
                    <th scope="col">When</th></tr></thead><tbody>\(rows)</tbody></table>
                    """))
                """)
    }

    func card(_ item: EnrollmentView, request: ConsoleRequest, errors: [String: String]) -> HTML {
        let id = item.id
        func error(_ field: String) -> HTML {
            errors[field].map { HTML("<p id=\"e-\(id)-\(field)\" class=\"error\">\($0)</p>") } ?? ""
        }
        func invalid(_ field: String) -> HTML {
            HTML.when(errors[field] != nil, " aria-invalid=\"true\" aria-describedby=\"e-\(id)-\(field)\"")
        }
        func pair(_ label: String, _ claimed: String, _ observed: String?) -> HTML {
            """
            <tr><th scope="row">\(label)</th><td>\(claimed.isEmpty ? "—" : claimed)</td>
            <td>\(observed.map { HTML("\($0)") } ?? HTML("<span class=\"muted\">not observed</span>"))</td></tr>
            """
        }
        let warnings: [HTML] = item.warnings.map { "<li><strong>\($0.code)</strong>: \($0.message)</li>" }
        let holdsIdentity = item.warnings.contains { $0.code == "machine_has_identity" }
        let actions: HTML =
            request.can(.configWrite)
            ? """
            <div class="decide">
            <form method="post" action="/enrollments/\(id)/approve" class="approve">
            <input type="hidden" name="csrf" value="\(request.session.csrf)">
            <div class="field"><label for="n-\(id)">Name</label>
            <input id="n-\(id)" name="name" value="\(item.suggestedName)" maxlength="63"\(invalid("name"))>\(error("name"))</div>
            <div class="field"><label for="s-\(id)">Site</label>
            <input id="s-\(id)" name="site" value="default" maxlength="128"\(invalid("site"))>\(error("site"))</div>
            \(HTML.when(holdsIdentity, """
                <div class="field"><label class="choice"><input type="checkbox" name="revoke_previous" value="yes">
                Revoke the identity this machine already holds</label></div>
                """))
            <div class="field"><label class="choice"><input type="checkbox" name="compared" value="yes"\(invalid("compared"))>
            The installer read me <code>\(item.keyFingerprintShort)</code> and it matches.</label>\(error("compared"))</div>
            <button type="submit">Approve</button>
            </form>
            <form method="post" action="/enrollments/\(id)/deny" class="deny">
            <input type="hidden" name="csrf" value="\(request.session.csrf)">
            <div class="field"><label for="d-\(id)">Reason for denying (shown to the installer)</label>
            <input id="d-\(id)" name="reason" maxlength="1024"\(invalid("reason"))>\(error("reason"))</div>
            <button type="submit" class="danger">Deny</button>
            </form>
            </div>
            """
            : ""
        return """
            <section class="card enrollment" aria-labelledby="t-\(id)" data-enrollment="\(id)">
            <h3 id="t-\(id)">\(item.claimed.hostname) <span class="muted">via poller \(item.pollerID) · \(item.componentType)</span></h3>
            <p>Key fingerprint <code class="fingerprint">\(item.keyFingerprint)</code>
            <br>Short form <strong class="fingerprint-short">\(item.keyFingerprintShort)</strong></p>
            \(HTML.when(!warnings.isEmpty, "<ul class=\"warning\">\(warnings)</ul>"))
            <table class="fields facts"><thead><tr><th scope="col">Fact</th><th scope="col">Claimed by the machine</th>
            <th scope="col">Observed by the poller</th></tr></thead><tbody>
            \(pair("Machine ID", item.claimed.machineID, nil))
            \(pair("Hostname", item.claimed.hostname, nil))
            \(pair("FQDN", item.claimed.fqdn, nil))
            \(pair("Addresses", item.claimed.addresses.joined(separator: ", "), item.observed.sourceAddress))
            \(pair("OS", item.claimed.os, nil))
            \(pair("Kernel", item.claimed.kernel, nil))
            \(pair("Architecture", item.claimed.arch, nil))
            <tr><th scope="row">Requested</th><td>\(HTML.time(item.requestedAt))</td><td>received \(HTML.time(item.observed.receivedAt))</td></tr>
            </tbody></table>
            <p class="muted">Request <code>\(id)</code> · expires \(HTML.time(item.expiresAt))</p>
            \(actions)
            </section>
            """
    }
}
