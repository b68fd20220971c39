import MusterIdentity
import Testing

@Suite("SPIFFE IDs")
struct SPIFFEIDTests {
    @Test(
        "valid IDs parse into trust domain and path",
        arguments: [
            ("spiffe://example.org", "example.org", ""),
            ("spiffe://example.org/muster/poller/edge-1", "example.org", "/muster/poller/edge-1"),
            ("spiffe://a-b_c.d9/Mixed.Case_path-1/x", "a-b_c.d9", "/Mixed.Case_path-1/x"),
        ])
    func valid(text: String, domain: String, path: String) throws {
        let id = try SPIFFEID(parsing: text)
        #expect(id.trustDomain == domain && id.path == path && id.description == text)
    }

    @Test(
        "each broken rule has its own code",
        arguments: [
            ("https://example.org/x", SPIFFEIDError.Code.wrongScheme),
            ("SPIFFE://example.org/x", .wrongScheme),
            ("spiffe:///x", .emptyTrustDomain),
            ("spiffe://Example.org/x", .badTrustDomain),
            ("spiffe://example.org:443/x", .badTrustDomain),
            ("spiffe://user@example.org/x", .badTrustDomain),
            ("spiffe://example.org/x/", .trailingSlash),
            ("spiffe://example.org//x", .badPathSegment),
            ("spiffe://example.org/./x", .badPathSegment),
            ("spiffe://example.org/x/..", .badPathSegment),
            ("spiffe://example.org/a%20b", .badPathSegment),
            ("spiffe://example.org/a b", .badPathSegment),
            ("spiffe://example.org/x?q=1", .queryOrFragment),
            ("spiffe://example.org/x#f", .queryOrFragment),
            ("spiffe://" + String(repeating: "a", count: 256) + "/x", .tooLong),
            ("spiffe://example.org/" + String(repeating: "a", count: 2048), .tooLong),
        ])
    func invalid(text: String, code: SPIFFEIDError.Code) {
        #expect(throws: SPIFFEIDError(code, ""), "\(text.prefix(60))") { try SPIFFEID(parsing: text) }
    }

    @Test("isWithin compares whole path segments, within one trust domain")
    func within() throws {
        let poller = try SPIFFEID(parsing: "spiffe://td/muster/poller/p1")
        #expect(try SPIFFEID(parsing: "spiffe://td/muster/poller/p1/agent/a").isWithin(poller))
        #expect(poller.isWithin(poller))
        #expect(try SPIFFEID(parsing: "spiffe://td/muster/poller/p10/agent/a").isWithin(poller) == false)
        #expect(try SPIFFEID(parsing: "spiffe://other/muster/poller/p1/agent/a").isWithin(poller) == false)
    }
}
