import MusterIdentity
import Testing

@Suite("Workload API selectors")
struct WorkloadSelectorTests {
    @Test(
        "the four unix selectors parse and print as written",
        arguments: [
            ("unix:uid:0", WorkloadSelector.uid(0)), ("unix:uid:4294967294", .uid(4_294_967_294)),
            ("unix:gid:65534", .gid(65534)), ("unix:user:nobody", .user("nobody")),
            ("unix:group:www-data", .group("www-data")), ("unix:user:svc$", .user("svc$")),
        ])
    func valid(text: String, selector: WorkloadSelector) throws {
        #expect(try WorkloadSelector(parsing: text) == selector)
        #expect(selector.description == text)
    }

    @Test(
        "other types and malformed values are refused with the selector named",
        arguments: [
            "k8s:ns:default", "unix:path:/bin/sh", "unix:uid", "unix:uid:", "unix:uid:-1", "unix:uid:+5",
            "unix:uid:4294967295", "unix:uid:99999999999", "unix:gid:1e3", "unix:user:", "unix:user:a b",
            "unix:group:a:b", "unix:user:\u{1b}[2J", "unix:user:\(String(repeating: "a", count: 65))",
            "docker:label:x", "UNIX:uid:0",
        ])
    func refused(text: String) {
        #expect(throws: IdentityError.self) { try WorkloadSelector(parsing: text) }
        do {
            _ = try WorkloadSelector(parsing: text)
        } catch {
            #expect(error.code == .selectorUnsupported)
            #expect(error.message.contains(String(text.prefix(20))))
        }
    }

    @Test("a list is refused at its first bad selector")
    func list() throws {
        #expect(try WorkloadSelector.parseAll(["unix:uid:1", "unix:group:adm"]) == [.uid(1), .group("adm")])
        #expect(throws: IdentityError.self) { try WorkloadSelector.parseAll(["unix:uid:1", "site:berlin"]) }
    }
}
