import Foundation
import Hummingbird
import HummingbirdTesting
import MusterStore
import Testing

@testable import MusterCore

/// The web console's pieces in process: escaping, the `next` rule, CSV fields, and its gate (session, CSRF,
/// scope) through the real router over a real SQLite store. Chromium drives the same pages in Tests/CoreAPI.
@Suite("Web console in process")
struct ConsoleTests {
    @Test("interpolated text is escaped, interpolated HTML is kept")
    func escaping() {
        let name = "<script>alert('x')</script>&\""
        let page: HTML = "<td>\(name)</td>\(HTML("<b>ok</b>"))"
        #expect(page.text == "<td>&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;</td><b>ok</b>")
        let optional: String? = nil
        #expect(HTML("<i>\(optional)</i>").text == "<i></i>")
    }

    @Test("next targets stay on this server")
    func localPaths() {
        #expect(Console.localPath("/packages/abc?x=1") == "/packages/abc?x=1")
        for hostile in ["//evil.example/", "https://evil.example/", "/\\evil.example", "evil", nil, "/a\nb"] {
            #expect(Console.localPath(hostile) == "/")
        }
    }

    @Test("CSV fields are quoted when needed and never start a formula")
    func csv() {
        #expect(Console.csvField("plain") == "plain")
        #expect(Console.csvField("a,b") == "\"a,b\"")
        #expect(Console.csvField("say \"hi\"") == "\"say \"\"hi\"\"\"")
        #expect(Console.csvField("=HYPERLINK(\"x\")") == "\"'=HYPERLINK(\"\"x\"\")\"")
        #expect(Console.csvField("@SUM(A1)") == "'@SUM(A1)")
    }

    @Test("CSRF tokens compare in full")
    func csrfCompare() {
        #expect(ConsoleSessions.matches("abc", "abc"))
        #expect(!ConsoleSessions.matches("abd", "abc"))
        #expect(!ConsoleSessions.matches("ab", "abc"))
        #expect(!ConsoleSessions.matches(nil, "abc"))
    }

    @Test("pages without a session go to sign-in; a session's POST needs its CSRF token; scopes gate writes")
    func gate() async throws {
        let core = try await CoreApp.make()
        let sessions = ConsoleSessions(
            store: core.store, auditor: RefusalAuditor(store: core.store, logger: .init(label: "t")),
            logger: .init(label: "t"))
        let (adminCookie, admin) = try await sessions.signIn(token: core.admin, from: "127.0.0.1")
        let (readerCookie, reader) = try await sessions.signIn(token: core.reader, from: "127.0.0.1")
        let form: HTTPFields = [.contentType: "application/x-www-form-urlencoded"]
        @Sendable func with(_ cookie: String) -> HTTPFields { form + [.cookie: "muster_session=\(cookie)"] }
        @Sendable func body(_ text: String) -> ByteBuffer { ByteBuffer(string: text) }
        try await core.app.test(.router) { client in
            try await client.execute(uri: "/pollers?x=1", method: .get) { response in
                #expect(response.status == .seeOther)
                #expect(response.headers[.location] == "/login?next=/pollers%3Fx%3D1")
            }
            try await client.execute(uri: "/", method: .get, headers: with(adminCookie)) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.cacheControl] == "no-store")
                #expect(String(buffer: response.body).contains("New package"))
            }
            try await client.execute(
                uri: "/packages", method: .post, headers: with(adminCookie), body: body("name=a&component_type=poller")
            ) { #expect($0.status == .forbidden) }
            try await client.execute(
                uri: "/packages", method: .post, headers: with(readerCookie),
                body: body("csrf=\(reader.csrf)&name=a&component_type=poller")
            ) { #expect($0.status == .forbidden) }
            try await client.execute(
                uri: "/packages", method: .post, headers: with(adminCookie),
                body: body("csrf=\(admin.csrf)&name=bad+name&component_type=poller&site=default&ttl_seconds=900")
            ) { response in
                #expect(response.status == .badRequest)
                #expect(String(buffer: response.body).contains("id=\"e-name\""))
            }
            #expect(try await core.store.listPackages(PackageFilter()).items.isEmpty)
            try await client.execute(
                uri: "/packages", method: .post, headers: with(adminCookie),
                body: body("csrf=\(admin.csrf)&name=edge-9&component_type=poller&site=default&ttl_seconds=900")
            ) { response in
                #expect(response.status == .created)
                #expect(String(buffer: response.body).contains("Download poller package"))
            }
            #expect(try await core.store.listPackages(PackageFilter()).items.map(\.name) == ["edge-9"])
            // A form sent as JSON is refused rather than read.
            try await client.execute(
                uri: "/packages", method: .post, headers: with(adminCookie) + [.contentType: "application/json"],
                body: body("{}")
            ) { #expect($0.status == .badRequest) }
        }
        await core.store.shutdown()
    }
}

extension HTTPFields {
    fileprivate static func + (left: HTTPFields, right: HTTPFields) -> HTTPFields {
        var fields = left
        for field in right { fields[field.name] = field.value }
        return fields
    }
}
