import ArgumentParser
import Foundation

/// `muster enrollment list|show|approve|deny`: self-enrollment requests, decided after comparing the key's
/// fingerprint with what the installer reads from the machine.
struct EnrollmentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "enrollment", abstract: "Self-enrollment requests.",
        subcommands: [List.self, Show.self, Approve.self, Deny.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List requests, newest first.")
        @OptionGroup var global: GlobalOptions
        @Option(help: "pending, approved, denied, expired or activated") var status: String?
        @Option(help: "Only requests this poller relayed") var poller: String?
        @Option(help: "Page size (1-1000)") var limit: Int = 100
        @Option(help: "Cursor from a previous page") var cursor: String?

        func run() async throws {
            var query = ["limit": "\(limit)"]
            if let status { query["status"] = status }
            if let poller { query["poller"] = poller }
            if let cursor { query["cursor"] = cursor }
            let page =
                try await global.client().json("GET", "/api/enrollments", query: query) as? [String: Any] ?? [:]
            if global.json {
                Output.printJSON(page)
                return
            }
            let rows = (page["items"] as? [[String: Any]] ?? []).map { item -> [String: Any] in
                var row = item
                let claimed = item["claimed"] as? [String: Any] ?? [:]
                row["hostname"] = claimed["hostname"]
                row["source"] = (item["observed"] as? [String: Any])?["source_address"]
                row["warnings"] = (item["warnings"] as? [[String: Any]] ?? []).compactMap { $0["code"] as? String }
                return row
            }
            Output.table(
                rows,
                columns: [
                    ("ID", "id"), ("STATUS", "status"), ("POLLER", "poller_id"), ("HOSTNAME", "hostname"),
                    ("SOURCE", "source"), ("REQUESTED", "requested_at"), ("WARNINGS", "warnings"),
                    ("KEY FINGERPRINT", "key_fingerprint"),
                ])
            if let next = page["next_cursor"] as? String { print("next page: --cursor \(next)") }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show one request: claimed and observed facts, the key fingerprint, the warnings.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Enrollment id") var id: String

        func run() async throws {
            let item = try await global.client().json("GET", "/api/enrollments/\(id)")
            if global.json { Output.printJSON(item) } else { Output.enrollment(item as? [String: Any] ?? [:]) }
        }
    }

    struct Approve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Approve a pending request; its key gets an identity under the relaying poller.",
            discussion:
                "Compare the fingerprint with the one the installer reads from `muster-agent enroll` first; pass it "
                + "with --fingerprint to have the approval refused if it differs.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Enrollment id") var id: String
        @Option(help: "The identity's name (default: the suggested one, from the hostname)") var name: String?
        @Option(help: "Site label") var site: String?
        @Option(
            name: .customLong("selector"),
            help: "Workload API selector: unix:uid:N, unix:gid:N, unix:user:NAME or unix:group:NAME (repeatable)")
        var selectors: [String] = []
        @Option(help: "Free-form notes") var notes: String?
        @Option(help: "The key fingerprint the installer read (sha256:HEX or the short form); must match")
        var fingerprint: String?
        @Flag(name: .customLong("revoke-previous"), help: "Revoke the identity this machine ID already holds")
        var revokePrevious = false

        func run() async throws {
            let client = try global.client()
            if let fingerprint {
                let item = try await client.json("GET", "/api/enrollments/\(id)") as? [String: Any] ?? [:]
                let full = (item["key_fingerprint"] as? String ?? "").lowercased()
                let short = (item["key_fingerprint_short"] as? String ?? "").uppercased()
                let given = fingerprint.trimmingCharacters(in: .whitespaces)
                guard given.lowercased() == full || given.uppercased() == short else {
                    throw CLIError(
                        code: .conflict,
                        message:
                            "the request's key is \(full) (\(short)), not \(given); do not approve a key you did not see"
                    )
                }
            }
            var body: [String: Any] = [:]
            if let name { body["name"] = name }
            if let site { body["site"] = site }
            if !selectors.isEmpty { body["selectors"] = selectors }
            if let notes { body["notes"] = notes }
            if revokePrevious { body["revoke_previous"] = true }
            let item = try await client.json("POST", "/api/enrollments/\(id)/approve", body: body)
            if global.json { Output.printJSON(item) } else { Output.enrollment(item as? [String: Any] ?? [:]) }
        }
    }

    struct Deny: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Deny a pending request; the agent is shown why.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Enrollment id") var id: String
        @Option(help: "Why (shown to the agent, kept in the audit log)") var reason: String

        func run() async throws {
            let item = try await global.client().json(
                "POST", "/api/enrollments/\(id)/deny", body: ["reason": reason])
            if global.json { Output.printJSON(item) } else { Output.enrollment(item as? [String: Any] ?? [:]) }
        }
    }
}

extension Output {
    /// One enrollment: claimed beside observed, the full fingerprint, the warnings.
    static func enrollment(_ item: [String: Any]) {
        func line(_ key: String, _ value: Any?) {
            print("\(key.padding(toLength: 22, withPad: " ", startingAt: 0)) \(text(value))")
        }
        let claimed = item["claimed"] as? [String: Any] ?? [:]
        let observed = item["observed"] as? [String: Any] ?? [:]
        for key in ["id", "status", "component_type", "poller_id", "requested_name", "suggested_name"] {
            line(key, item[key])
        }
        line("key_fingerprint", item["key_fingerprint"])
        line("key_fingerprint_short", item["key_fingerprint_short"])
        print("claimed (by the machine, unverified):")
        for key in ["machine_id", "hostname", "fqdn", "addresses", "os", "kernel", "arch"] {
            line("  " + key, claimed[key])
        }
        print("observed (by poller \(text(observed["poller_id"]))):")
        for key in ["source_address", "received_at"] { line("  " + key, observed[key]) }
        for key in [
            "requested_at", "expires_at", "decided_at", "decided_by", "decision_reason", "name", "spiffe_id",
            "package_id", "activated_at",
        ] { line(key, item[key]) }
        let warnings = item["warnings"] as? [[String: Any]] ?? []
        if !warnings.isEmpty {
            print("warnings:")
            for warning in warnings { print("  \(text(warning["code"])): \(text(warning["message"]))") }
        }
    }
}
