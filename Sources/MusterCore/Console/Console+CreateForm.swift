import Foundation
import MusterIdentity
import MusterStore

/// The create drawer's values as the operator typed them, and a message per field that is wrong.
struct CreateForm: Sendable {
    var name = ""
    var type = "poller"
    var poller = ""
    var site = "default"
    var ttl = "900"
    var selectors = ""
    var notes = ""
    var errors: [String: String] = [:]
    /// A refusal that belongs to no one field.
    var formError: String?

    static let ttlPresets: [(seconds: String, label: String)] = [
        ("900", "15 minutes"), ("3600", "1 hour"), ("14400", "4 hours"), ("28800", "8 hours"), ("86400", "24 hours"),
    ]

    init(defaultType: String) { type = defaultType }

    init(_ form: ConsoleForm) {
        name = form["name"]?.trimmingCharacters(in: .whitespaces) ?? ""
        type = form["component_type"] ?? ""
        poller = form["poller_id"] ?? ""
        site = form["site"]?.trimmingCharacters(in: .whitespaces) ?? ""
        ttl = form["ttl_seconds"] ?? ""
        selectors = form["selectors"] ?? ""
        notes = form["notes"] ?? ""
    }

    /// Checks every field (all messages at once, each next to its field) and returns the request when all pass.
    /// The shape rules are the API's own (`PackageRequest(json:)`), applied one field at a time.
    mutating func validated() -> PackageRequest? {
        errors = [:]
        let componentType = ComponentType(rawValue: type)
        if componentType == nil { errors["component_type"] = "Choose poller, agent or checker." }
        do { try MusterIDs.checkName(name) } catch {
            errors["name"] =
                name.isEmpty
                ? "A name is required." : "Use 1–63 of a–z, 0–9, '.', '_' and '-' (not '.' or '..'): \(error.reason)."
        }
        if componentType != nil, componentType != .poller {
            if poller.isEmpty {
                errors["poller_id"] = "Choose the poller this \(type) joins through."
            } else if (try? MusterIDs.checkName(poller)) == nil {
                errors["poller_id"] = "That is not a poller name."
            }
        }
        let selectorList = selectors.split(whereSeparator: \.isNewline).map {
            $0.trimmingCharacters(in: .whitespaces)
        }.filter { !$0.isEmpty }
        let checks: [(String, JSONValue)] = [
            ("site", .string(site)), ("ttl_seconds", .number(Double(ttl) ?? .nan)),
            ("selectors", .array(selectorList.map(JSONValue.string))), ("notes", .string(notes)),
        ]
        for (field, value) in checks {
            do {
                _ = try PackageRequest(json: ["name": .string("x"), "component_type": .string("poller"), field: value])
            } catch let error as APIError { errors[field] = Self.sentence(error.message) } catch {
                errors[field] = "This value is not accepted."
            }
        }
        guard errors.isEmpty, let componentType else { return nil }
        return PackageRequest(
            name: name, componentType: componentType, pollerName: componentType == .poller ? nil : poller, site: site,
            ttlSeconds: Int64(Double(ttl) ?? 900), selectors: selectorList, notes: notes)
    }

    /// Puts a refusal from the domain next to the field it is about.
    mutating func place(_ error: DomainError) {
        switch error.code {
        case .conflict: errors["name"] = Self.sentence(error.message)
        case .unprocessable where type != "poller": errors["poller_id"] = Self.sentence(error.message)
        default: formError = Self.sentence(error.message)
        }
    }

    static func sentence(_ message: String) -> String {
        guard let first = message.first else { return message }
        return first.uppercased() + message.dropFirst() + (message.hasSuffix(".") ? "" : ".")
    }
}
