import MusterErrors

/// A SPIFFE ID parsed and checked by the rules of the SPIFFE-ID standard.
public struct SPIFFEID: Hashable, Sendable, CustomStringConvertible {
    /// The trust domain name, e.g. `example.org`.
    public let trustDomain: String
    /// The path, "" or starting with `/`, e.g. `/muster/poller/edge-1`.
    public let path: String

    public var description: String { "spiffe://\(trustDomain)\(path)" }

    /// Parses `text` as a SPIFFE ID, throwing a `SPIFFEIDError` that names the broken rule.
    public init(parsing text: String) throws(SPIFFEIDError) {
        let bytes = Array(text.utf8)
        guard bytes.count <= 2048 else { throw .init(.tooLong, "a SPIFFE ID is at most 2048 bytes") }
        let scheme = Array("spiffe://".utf8)
        guard bytes.count >= scheme.count, bytes[..<scheme.count].elementsEqual(scheme) else {
            throw .init(.wrongScheme, "a SPIFFE ID starts with spiffe://")
        }
        let rest = bytes[scheme.count...]
        let slash = rest.firstIndex(of: UInt8(ascii: "/")) ?? rest.endIndex
        let domain = Array(rest[..<slash])
        let path = Array(rest[slash...])
        try Self.checkTrustDomain(domain)
        try Self.checkPath(path)
        self.trustDomain = String(decoding: domain, as: UTF8.self)
        self.path = String(decoding: path, as: UTF8.self)
    }

    /// Builds an ID from a checked trust domain and path segments.
    public init(trustDomain: String, segments: [String]) throws(SPIFFEIDError) {
        if segments.contains(where: { $0.contains("/") }) {
            throw .init(.badPathSegment, "a path segment may not contain /")
        }
        try self.init(parsing: "spiffe://\(trustDomain)" + segments.map { "/" + $0 }.joined())
    }

    /// True when this ID is `prefix` itself or lies below it (segment-wise, not string-wise).
    public func isWithin(_ prefix: SPIFFEID) -> Bool {
        guard trustDomain == prefix.trustDomain else { return false }
        if prefix.path.isEmpty || path == prefix.path { return true }
        return path.hasPrefix(prefix.path + "/")
    }

    /// The path's segments, e.g. `["muster", "poller", "edge-1"]`.
    public var segments: [Substring] {
        path.split(separator: "/", omittingEmptySubsequences: false).dropFirst().map { $0 }
    }

    static func checkTrustDomain(_ domain: [UInt8]) throws(SPIFFEIDError) {
        guard domain.isEmpty == false else { throw .init(.emptyTrustDomain, "the trust domain is empty") }
        guard domain.count <= 255 else { throw .init(.tooLong, "a trust domain is at most 255 bytes") }
        for byte in domain {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "."), UInt8(ascii: "-"), UInt8(ascii: "_"):
                continue
            case UInt8(ascii: ":"):
                throw .init(.badTrustDomain, "a trust domain may not carry a port")
            case UInt8(ascii: "@"):
                throw .init(.badTrustDomain, "a SPIFFE ID may not carry userinfo")
            case UInt8(ascii: "?"), UInt8(ascii: "#"):
                throw .init(.queryOrFragment, "a SPIFFE ID may not carry a query or fragment")
            case UInt8(ascii: "A")...UInt8(ascii: "Z"):
                throw .init(.badTrustDomain, "a trust domain is lowercase")
            default:
                throw .init(.badTrustDomain, "a trust domain holds only a-z, 0-9, '.', '-' and '_'")
            }
        }
    }

    static func checkPath(_ path: [UInt8]) throws(SPIFFEIDError) {
        guard path.isEmpty == false else { return }
        guard path.last != UInt8(ascii: "/") else { throw .init(.trailingSlash, "a SPIFFE ID path may not end with /") }
        for segment in path.dropFirst().split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false) {
            guard segment.isEmpty == false else {
                throw .init(.badPathSegment, "a SPIFFE ID path has an empty segment")
            }
            if segment.elementsEqual([UInt8(ascii: ".")])
                || segment.elementsEqual([UInt8(ascii: "."), UInt8(ascii: ".")])
            {
                throw .init(.badPathSegment, "a SPIFFE ID path may not hold a '.' or '..' segment")
            }
            for byte in segment {
                switch byte {
                case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                    UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "-"), UInt8(ascii: "_"):
                    continue
                case UInt8(ascii: "%"):
                    throw .init(.badPathSegment, "a SPIFFE ID may not be percent-encoded")
                case UInt8(ascii: "?"), UInt8(ascii: "#"):
                    throw .init(.queryOrFragment, "a SPIFFE ID may not carry a query or fragment")
                default:
                    throw .init(.badPathSegment, "a SPIFFE ID path holds only a-z, A-Z, 0-9, '.', '-' and '_'")
                }
            }
        }
    }
}

/// Why a text is not a SPIFFE ID; equality compares the code.
public typealias SPIFFEIDError = Failure<SPIFFEIDErrorCode>

/// The SPIFFE ID rule a text broke; a struct of constants so codes can grow.
public struct SPIFFEIDErrorCode: NamedErrorCode {
    public let name: String
    public static let wrongScheme = SPIFFEIDErrorCode(name: "wrongScheme")
    public static let emptyTrustDomain = SPIFFEIDErrorCode(name: "emptyTrustDomain")
    public static let badTrustDomain = SPIFFEIDErrorCode(name: "badTrustDomain")
    public static let badPathSegment = SPIFFEIDErrorCode(name: "badPathSegment")
    public static let trailingSlash = SPIFFEIDErrorCode(name: "trailingSlash")
    public static let queryOrFragment = SPIFFEIDErrorCode(name: "queryOrFragment")
    public static let tooLong = SPIFFEIDErrorCode(name: "tooLong")
}
