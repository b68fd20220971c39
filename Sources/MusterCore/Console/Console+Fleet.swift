import Foundation
import Hummingbird
import MusterStore

extension Console {
    /// The event types the events page offers to filter by; its script listens for exactly these (read from the
    /// page's filter, so the list is written once).
    static let eventTypes = [
        "package.created", "package.delivered", "package.downloaded", "package.activated", "package.revoked",
        "package.expired", "enrollment.requested", "enrollment.approved", "enrollment.denied", "enrollment.expired",
        "enrollment.activated",
    ]
    /// A poller not heard from for this long is marked stale (its package stream reconnects well within it).
    static let staleAfter: Int64 = 5 * 60_000

    var fleetRoutes: [ConsoleRoute] {
        [
            ConsoleRoute(method: .get, path: "/pollers", scope: .configRead) { request in
                try await pollersPage(request)
            },
            ConsoleRoute(method: .get, path: "/audit", scope: .auditRead) { request in
                try await auditPage(request)
            },
            ConsoleRoute(method: .get, path: "/audit.csv", scope: .auditRead) { request in
                try await auditCSV(request)
            },
            ConsoleRoute(method: .get, path: "/events", scope: .configRead) { request in
                try await eventsPage(request)
            },
            // Events carry packages as the API shows them (no secret), which config:read may read anyway.
            ConsoleRoute(method: .get, path: "/events/stream", scope: .configRead) { request in
                var response = try await api.eventStream(request.request)
                response.headers[.consoleContentTypeOptions] = "nosniff"
                return response
            },
        ]
    }

    func pollersPage(_ request: ConsoleRequest) async throws -> Response {
        let now = Clock.nowMillis()
        let rows: [HTML] = try await packages.pollerSummaries().map { poller in
            let record = poller.record
            let stale = record.lastContactAt.map { now - $0 > Self.staleAfter } ?? true
            let counts: [String] = PackageStatus.allCases.compactMap { status -> String? in
                guard let count = poller.packageCounts[status] else { return nil }
                return "\(count) \(status.rawValue)"
            }
            return """
                <tr data-poller="\(record.name)"\(HTML.when(stale, " class=\"stale\""))>
                <td><a href="/packages/\(record.packageID)">\(record.name)</a></td>
                <td>\(HTML.status(record.status))\(poller.packageStatus.map { HTML(" <span class=\"muted\">package \($0.rawValue)</span>") } ?? "")</td>
                <td>\(record.site)</td>
                <td>\(record.advertiseAddress.map { HTML("<code>\($0)</code>") } ?? "<span class=\"muted\">—</span>")</td>
                <td>\(HTML.time(record.lastContactAt))\(record.lastContactFrom.map { HTML(" <span class=\"muted\">from \($0)</span>") } ?? "")\(HTML.when(stale, " <strong class=\"stale-mark\">stale</strong>"))</td>
                <td>\(HTML.time(poller.svidExpiresAt))</td>
                <td>\(HTML.time(poller.caExpiresAt))</td>
                <td><a href="/?poller=\(Self.percentEncoded(record.name))">\(counts.isEmpty ? "none" : counts.joined(separator: " · "))</a></td>
                </tr>
                """
        }
        return page(
            title: "Pollers", session: request.session, active: "Pollers",
            body: """
                <p>Pollers that attested to Core. A poller is marked <strong>stale</strong> when Core has not heard from it
                for 5 minutes. To revoke one, open its package (the name) and revoke it there: its agents' packages go too.</p>
                <table class="pollers" aria-label="Pollers">
                <thead><tr><th scope="col">Name</th><th scope="col">Status</th><th scope="col">Site</th>
                <th scope="col">Advertised address</th><th scope="col">Last contact</th><th scope="col">SVID expires</th>
                <th scope="col">CA expires</th><th scope="col">Agent and checker packages</th></tr></thead>
                <tbody>\(rows.isEmpty ? "<tr><td colspan=\"8\" class=\"muted\">No poller has attested yet.</td></tr>" : rows.joined())</tbody>
                </table>
                """)
    }

    /// The audit filters from the query string; a bad value is reported and that filter left out.
    func auditFilter(_ request: ConsoleRequest, limit: Int) -> (AuditFilter, [String]) {
        var problems: [String] = []
        func time(_ name: String) -> Int64? {
            guard let text = request.query(name) else { return nil }
            // `datetime-local` sends no zone (and may omit seconds): read it as UTC, as the label says.
            for candidate in [text, text + "Z", text + ":00Z"] {
                if let millis = Timestamp.millis(parsing: candidate) { return millis }
            }
            problems.append("'\(text)' is not a time; use e.g. 2026-01-31T12:00 (UTC).")
            return nil
        }
        var filter = AuditFilter(
            actor: request.query("actor"), action: request.query("action"), targetID: request.query("target"),
            since: time("since"),
            until: time("until"), limit: limit)
        if let outcome = request.query("outcome") {
            if AuditOutcome(rawValue: outcome) != nil {
                filter.outcome = outcome
            } else {
                problems.append("Unknown outcome '\(outcome)'.")
            }
        }
        if let cursor = request.query("before") {
            if let id = Int64(cursor) { filter.beforeID = id } else { problems.append("That page link is not valid.") }
        }
        return (filter, problems)
    }

    func auditPage(_ request: ConsoleRequest) async throws -> Response {
        let (filter, problems) = auditFilter(request, limit: 100)
        let page = try await packages.auditLog(filter)
        let query = request.request.uri.queryParameters
        let kept = ["actor", "action", "outcome", "target", "since", "until"].compactMap { name in
            query[Substring(name)].flatMap { $0.isEmpty ? nil : "\(name)=\(Self.percentEncoded(String($0)))" }
        }
        let rows: [HTML] = page.items.map { entry in
            let target: HTML =
                entry.targetType == "package" && entry.targetID != nil
                ? "<a href=\"/packages/\(entry.targetID ?? "")\">\(entry.targetID ?? "")</a>"
                : "\(entry.targetType) \(entry.targetID ?? "")"
            return """
                <tr><td>\(HTML.time(entry.at))</td><td>\(entry.actor)</td><td>\(entry.sourceIP ?? "")</td>
                <td>\(entry.action)</td><td>\(target)</td><td class="outcome-\(entry.outcome)">\(entry.outcome)</td>
                <td>\(entry.reason ?? "")</td></tr>
                """
        }
        func input(_ name: String, _ label: String, type: String = "text") -> HTML {
            """
            <div class="field"><label for="a-\(name)">\(label)</label>
            <input id="a-\(name)" name="\(name)" type="\(type)" value="\(query[Substring(name)].map(String.init))"></div>
            """
        }
        let outcomes: [HTML] = AuditOutcome.allCases.map {
            "<option\(HTML.when(query["outcome"].map(String.init) == $0.rawValue, " selected"))>\($0.rawValue)</option>"
        }
        let next: HTML =
            page.nextCursor.map { cursor in
                "<p class=\"pager\"><a href=\"/audit?\((kept + ["before=\(cursor)"]).joined(separator: "&"))\">Older entries →</a></p>"
            } ?? ""
        return self.page(
            title: "Audit log", session: request.session, active: "Audit",
            body: """
                \(problems.map { Self.notice($0) })
                <form method="get" action="/audit" class="filters" role="search" aria-label="Filter the audit log">
                \(input("actor", "Actor")) \(input("action", "Action")) \(input("target", "Target ID"))
                <div class="field"><label for="a-outcome">Outcome</label>
                <select id="a-outcome" name="outcome"><option value="">any</option>\(outcomes)</select></div>
                \(input("since", "Since (UTC)", type: "datetime-local")) \(input("until", "Until (UTC)", type: "datetime-local"))
                <button type="submit">Filter</button> <a href="/audit">Clear</a>
                <a class="button" href="/audit.csv\(kept.isEmpty ? "" : "?" + kept.joined(separator: "&"))" download>Export CSV</a>
                </form>
                <table class="audit" aria-label="Audit log, newest first">
                <thead><tr><th scope="col">Time</th><th scope="col">Actor</th><th scope="col">Source</th>
                <th scope="col">Action</th><th scope="col">Target</th><th scope="col">Outcome</th>
                <th scope="col">Reason</th></tr></thead>
                <tbody>\(rows.isEmpty ? "<tr><td colspan=\"7\" class=\"muted\">No entries match.</td></tr>" : rows.joined())</tbody>
                </table>
                \(next)
                """)
    }

    /// The filtered audit log as CSV, newest first, at most 10,000 rows.
    func auditCSV(_ request: ConsoleRequest) async throws -> Response {
        var (filter, _) = auditFilter(request, limit: 1000)
        var lines = ["id,at,actor,source_ip,action,target_type,target_id,outcome,reason,details"]
        while lines.count <= 10_000 {
            let page = try await packages.auditLog(filter)
            for entry in page.items {
                lines.append(
                    [
                        entry.id.map(String.init) ?? "", Timestamp.text(entry.at), entry.actor, entry.sourceIP ?? "",
                        entry.action, entry.targetType, entry.targetID ?? "", entry.outcome, entry.reason ?? "",
                        entry.details,
                    ].map(Self.csvField).joined(separator: ","))
            }
            guard let next = page.nextCursor.flatMap(Int64.init) else { break }
            filter.beforeID = next
        }
        var headers: HTTPFields = [
            .contentType: "text/csv; charset=utf-8", .contentDisposition: "attachment; filename=\"muster-audit.csv\"",
        ]
        Self.secure(&headers)
        return Response(
            status: .ok, headers: headers,
            body: .init(byteBuffer: ByteBuffer(string: lines.prefix(10_001).joined(separator: "\r\n") + "\r\n")))
    }

    /// One RFC 4180 field; text a spreadsheet would run as a formula is prefixed with `'`.
    static func csvField(_ text: String) -> String {
        var text = text
        if let first = text.first, "=+-@\t\r".contains(first) { text = "'" + text }
        guard text.contains(where: { ",\"\r\n".contains($0) }) else { return text }
        return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    func eventsPage(_ request: ConsoleRequest) async throws -> Response {
        let (events, last) = try await packages.recentEvents(50)
        let rows: [HTML] = events.reversed().map { event in
            let enrollment = event.type.hasPrefix("enrollment.")
            let payload = Data(event.payload.utf8)
            let name =
                enrollment
                ? (try? JSONDecoder().decode(EnrollmentView.self, from: payload)).map { $0.name ?? $0.claimed.hostname }
                : (try? JSONDecoder().decode(PackageView.self, from: payload)).map(\.name)
            let link = enrollment ? "/enrollments" : "/packages/\(event.subject)"
            return """
                <tr data-type="\(event.type)"><td>\(event.id ?? 0)</td><td>\(HTML.time(event.at))</td><td>\(event.type)</td>
                <td><a href="\(link)">\(name ?? event.subject)</a></td></tr>
                """
        }
        let options: [HTML] = Self.eventTypes.map { HTML("<option>\($0)</option>") }
        return page(
            title: "Events", session: request.session, active: "Events",
            body: """
                <p>Package and enrollment events as they happen, newest first. After a lost connection the stream resumes from the
                last event it showed, so none is missed.</p>
                <div class="filters" role="group" aria-label="Event controls">
                <div class="field"><label for="ev-type">Show type</label>
                <select id="ev-type"><option value="">all</option>\(options)</select></div>
                <button type="button" id="ev-pause" aria-pressed="false">Pause</button>
                <span id="ev-state" class="live" role="status">Live updates need JavaScript; reload to see new events.</span>
                </div>
                <table class="events" aria-label="Events, newest first" data-stream="/events/stream" data-after="\(last)">
                <thead><tr><th scope="col">ID</th><th scope="col">Time</th><th scope="col">Type</th>
                <th scope="col">Package</th></tr></thead>
                <tbody id="events">\(rows)</tbody>
                </table>
                """)
    }
}
