import Foundation
import MusterIdentity
import MusterStore

extension PackageRequest {
    static let fields: Set<String> = [
        "name", "component_type", "poller_id", "site", "ttl_seconds", "selectors", "notes", "metadata",
    ]

    /// The items of a bulk create (`{"items": [...]}`, 1 to 1,000), each parsed as one create; a bad item's
    /// error names it by its place (from 0).
    static func bulk(json object: [String: JSONValue]) throws -> [PackageRequest] {
        if let unknown = object.keys.first(where: { $0 != "items" }) {
            throw APIError(.badRequest, "unknown field '\(unknown)' (fields: items)")
        }
        guard case .array(let items)? = object["items"] else {
            throw APIError(.badRequest, "items is required: a list of packages to create")
        }
        guard (1...PackageService.maxBulkCreate).contains(items.count) else {
            throw APIError(.badRequest, "items holds 1 to \(PackageService.maxBulkCreate) packages, not \(items.count)")
        }
        return try items.enumerated().map { index, item in
            guard case .object(let fields) = item else {
                throw APIError(.badRequest, "items[\(index)] is not a JSON object")
            }
            do { return try PackageRequest(json: fields) } catch let error as APIError {
                throw APIError(error.code, "items[\(index)]: \(error.message)")
            }
        }
    }

    /// Checks a create body field by field; the first problem is the answer, named precisely.
    init(json object: [String: JSONValue]) throws {
        if let unknown = object.keys.first(where: { !Self.fields.contains($0) }) {
            throw APIError(
                .badRequest, "unknown field '\(unknown)' (fields: \(Self.fields.sorted().joined(separator: ", ")))")
        }
        guard let name = object["name"]?.string else {
            throw APIError(.badRequest, "name is required and must be a string")
        }
        guard let typeText = object["component_type"]?.string else {
            throw APIError(.badRequest, "component_type is required: poller, agent or checker")
        }
        guard let type = ComponentType(rawValue: typeText) else {
            throw APIError(.badRequest, "component_type must be poller, agent or checker, not '\(typeText)'")
        }
        var poller: String?
        if let value = object["poller_id"], !value.isNull {
            guard let text = value.string else {
                throw APIError(.badRequest, "poller_id must be a string (the poller's name)")
            }
            poller = text
        }
        let site = try Self.string(object, "site", default: "default", maxLength: 128)
        guard !site.isEmpty else { throw APIError(.badRequest, "site must not be empty") }
        var ttl = Int64(JoinToken.defaultTTL)
        if let value = object["ttl_seconds"], !value.isNull {
            guard case .number(let number) = value, number == number.rounded(), abs(number) < 1e12 else {
                throw APIError(.badRequest, "ttl_seconds must be a whole number of seconds")
            }
            ttl = Int64(number)
        }
        guard (60...Int64(JoinToken.maximumTTL)).contains(ttl) else {
            throw APIError(.badRequest, "ttl_seconds must be from 60 to \(Int64(JoinToken.maximumTTL)) (24 h)")
        }
        let selectors = try Self.selectors(object["selectors"])
        let notes = try Self.string(object, "notes", default: "", maxLength: 4096)
        var metadata: [String: String] = [:]
        if let value = object["metadata"], !value.isNull {
            guard case .object(let map) = value, map.values.allSatisfy({ $0.string != nil }), map.count <= 64 else {
                throw APIError(.badRequest, "metadata must be an object of at most 64 string values")
            }
            metadata = map.compactMapValues(\.string)
            for (key, value) in metadata {
                guard key.utf8.count <= 256, value.utf8.count <= 4096 else {
                    throw APIError(.badRequest, "metadata keys are at most 256 bytes and values at most 4096")
                }
                try Self.checkPrintable(key, "metadata key")
                try Self.checkPrintable(value, "metadata[\(key)]")
            }
        }
        self.init(
            name: name, componentType: type, pollerName: poller, site: site, ttlSeconds: ttl,
            selectors: selectors, notes: notes, metadata: metadata)
    }

    /// A `selectors` field: at most 32 `type:value` strings, or nothing.
    static func selectors(_ value: JSONValue?) throws -> [String] {
        guard let value, !value.isNull else { return [] }
        guard case .array(let list) = value, list.allSatisfy({ $0.string != nil }) else {
            throw APIError(.badRequest, "selectors must be a list of strings of the form type:value")
        }
        let selectors = list.compactMap(\.string)
        for selector in selectors { try Self.checkPrintable(selector, "selectors") }
        guard selectors.count <= 32 else { throw APIError(.badRequest, "at most 32 selectors") }
        for selector in selectors {
            let parts = selector.split(separator: ":", maxSplits: 1)
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty, selector.utf8.count <= 256 else {
                throw APIError(
                    .badRequest,
                    "selector '\(selector.prefix(64))' is not type:value (both parts non-empty, 256 bytes at most)")
            }
            // The agent serves the Workload API by these; one it could not match would be a silent no.
            do { _ = try WorkloadSelector(parsing: selector) } catch { throw APIError(.badRequest, error.message) }
        }
        return selectors
    }

    /// Refuses control characters (ESC, NUL, CR, …; newlines only in notes), naming the field and the character.
    static func checkPrintable(_ text: String, _ key: String, allowingNewlines: Bool = false) throws {
        if let control = TextRules.firstControl(in: text, allowingNewlines: allowingNewlines) {
            throw APIError(
                .badRequest, "\(key) holds the control character \(control); only printable text is accepted")
        }
    }

    static func string(_ object: [String: JSONValue], _ key: String, default fallback: String, maxLength: Int) throws
        -> String
    {
        guard let value = object[key], !value.isNull else { return fallback }
        guard let text = value.string else { throw APIError(.badRequest, "\(key) must be a string") }
        guard text.utf8.count <= maxLength else {
            throw APIError(.badRequest, "\(key) is longer than \(maxLength) bytes")
        }
        try checkPrintable(text, key, allowingNewlines: key == "notes")
        return text
    }
}
