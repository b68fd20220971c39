import Foundation
import Hummingbird
import MusterStore
import NIOCore

extension Response {
    /// A JSON response in the API's style.
    static func json(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
        Response(
            status: status, headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(bytes: try APIJSON.encode(value))))
    }
}

/// `{"items": [...], "next_cursor": …}`.
/// The answer of a bulk create: the packages made, in the request's order.
struct BulkBody<Item: Encodable>: Encodable {
    let items: [Item]
}

struct ListBody<Item: Encodable>: Encodable {
    let items: [Item]
    let nextCursor: String?

    enum CodingKeys: String, CodingKey {
        case items
        case nextCursor = "next_cursor"
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(items, forKey: .items)
        try container.encode(nextCursor, forKey: .nextCursor)
    }
}

/// Query-string readers that refuse bad values with a specific message.
struct Query {
    let parameters: [String: String]
    let allowed: Set<String>

    init(_ request: Request, allowed: Set<String>) throws {
        var values: [String: String] = [:]
        for (key, value) in request.uri.queryParameters {
            let name = String(key)
            guard allowed.contains(name) else {
                throw APIError(
                    .badRequest,
                    "unknown query parameter '\(name)' (allowed: \(allowed.sorted().joined(separator: ", ")))")
            }
            guard values[name] == nil else {
                throw APIError(.badRequest, "query parameter '\(name)' is given more than once")
            }
            // An empty value is refused rather than read as "no filter": a client that sent one meant something.
            guard !value.isEmpty else {
                throw APIError(.badRequest, "query parameter '\(name)' is empty; leave it out instead")
            }
            guard value.utf8.count <= 256 else {
                throw APIError(.badRequest, "query parameter '\(name)' is longer than 256 bytes")
            }
            values[name] = String(value)
        }
        parameters = values
        self.allowed = allowed
    }

    func string(_ name: String) -> String? { parameters[name].flatMap { $0.isEmpty ? nil : $0 } }

    func limit(default fallback: Int = 100) throws -> Int {
        guard let text = string("limit") else { return fallback }
        guard let value = Int(text), (1...1000).contains(value) else {
            throw APIError(.badRequest, "limit must be an integer from 1 to 1000")
        }
        return value
    }

    func time(_ name: String) throws -> Int64? {
        guard let text = string(name) else { return nil }
        guard let millis = Timestamp.millis(parsing: text) else {
            throw APIError(.badRequest, "\(name) must be an RFC 3339 time, e.g. 2026-01-31T12:00:00Z")
        }
        return millis
    }

    func oneOf<T: RawRepresentable>(_ name: String, _ type: T.Type) throws -> T?
    where T.RawValue == String, T: CaseIterable {
        guard let text = string(name) else { return nil }
        guard let value = T(rawValue: text) else {
            throw APIError(.badRequest, "\(name) must be one of \(T.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return value
    }
}

/// Reads a JSON object body, refusing anything else with a clear message.
func jsonObject(
    _ request: inout Request, context: CoreRequestContext, allowEmpty: Bool = false, upTo limit: Int? = nil
) async throws -> [String: JSONValue] {
    let buffer: ByteBuffer
    let size = limit ?? context.maxUploadSize
    do { buffer = try await request.collectBody(upTo: size) } catch {
        guard error is NIOTooManyBytesError || (error as? HTTPError)?.status == .contentTooLarge else { throw error }
        throw APIError(
            .tooLarge, "request body is larger than \(size >= 1 << 20 ? "\(size >> 20) MiB" : "\(size >> 10) KiB")")
    }
    if buffer.readableBytes == 0 {
        if allowEmpty { return [:] }
        throw APIError(.badRequest, "request body must be a JSON object")
    }
    guard case .object(let object)? = try? JSONDecoder().decode(JSONValue.self, from: Data(buffer: buffer)) else {
        throw APIError(.badRequest, "request body is not a JSON object")
    }
    return object
}
