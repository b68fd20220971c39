import ArgumentParser
import Foundation

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

struct PackageCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "package", abstract: "Onboarding packages.",
        subcommands: [Create.self, List.self, Show.self, Download.self, Revoke.self]
    )

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a package (the join token is revealed only by download).")
        @OptionGroup var global: GlobalOptions
        @Option(help: "Name: [a-z0-9._-], 1-63") var name: String
        @Option(help: "poller, agent or checker") var type: String
        @Option(help: "The poller serving this agent/checker") var poller: String?
        @Option(help: "Site label") var site: String?
        @Option(help: "Token lifetime: seconds, or 30m, 2h (60 s to 24 h; default 15m)") var ttl: String?
        @Option(
            name: .customLong("selector"),
            help: "Workload API selector: unix:uid:N, unix:gid:N, unix:user:NAME or unix:group:NAME (repeatable)")
        var selectors: [String] = []
        @Option(help: "Free-form notes") var notes: String?

        func run() async throws {
            var body: [String: Any] = ["name": name, "component_type": type]
            if let poller { body["poller_id"] = poller }
            if let site { body["site"] = site }
            if let ttl { body["ttl_seconds"] = try Self.seconds(ttl) }
            if !selectors.isEmpty { body["selectors"] = selectors }
            if let notes { body["notes"] = notes }
            let package = try await global.client().json("POST", "/api/edge-packages", body: body)
            if global.json { Output.printJSON(package) } else { Output.package(package as? [String: Any] ?? [:]) }
        }

        static func seconds(_ text: String) throws -> Int {
            let units: [Character: Int] = ["s": 1, "m": 60, "h": 3600]
            if let unit = text.last, let factor = units[unit], let value = Int(text.dropLast()) {
                return value * factor
            }
            guard let value = Int(text) else {
                throw CLIError(code: .usage, message: "--ttl must be seconds or a number with s, m or h (e.g. 30m)")
            }
            return value
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List packages, newest first.")
        @OptionGroup var global: GlobalOptions
        @Option(help: "created, delivered, activated, expired or revoked") var status: String?
        @Option(help: "poller, agent or checker") var type: String?
        @Option(help: "Only packages served by this poller") var poller: String?
        @Option(help: "Only this site") var site: String?
        @Option(help: "Page size (1-1000)") var limit: Int = 100
        @Option(help: "Cursor from a previous page") var cursor: String?

        func run() async throws {
            let page =
                try await global.client().json(
                    "GET", "/api/edge-packages",
                    query: [
                        "status": status, "type": type, "poller": poller, "site": site, "limit": String(limit),
                        "cursor": cursor,
                    ]) as? [String: Any] ?? [:]
            if global.json {
                Output.printJSON(page)
                return
            }
            Output.table(
                page["items"] as? [[String: Any]] ?? [],
                columns: [
                    ("ID", "id"), ("NAME", "name"), ("TYPE", "component_type"), ("STATUS", "status"),
                    ("POLLER", "poller_id"),
                    ("SITE", "site"), ("EXPIRES", "expires_at"), ("SPIFFE ID", "spiffe_id"),
                ])
            if let next = page["next_cursor"] as? String { print("\nmore: muster package list --cursor \(next)") }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one package and its join command.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Package id") var id: String

        func run() async throws {
            let package = try await global.client().json("GET", "/api/edge-packages/\(id)")
            if global.json { Output.printJSON(package) } else { Output.package(package as? [String: Any] ?? [:]) }
        }
    }

    struct Download: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Download the package archive once (it holds the join token).")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Package id") var id: String
        @Option(
            name: .shortAndLong,
            help: "Where to write the tar.gz (default: the name Core suggests, in the current directory)")
        var output: String?

        func run() async throws {
            let client = try global.client()
            let package = try await client.json("GET", "/api/edge-packages/\(id)") as? [String: Any] ?? [:]
            let path =
                output ?? "muster-\(Output.text(package["component_type"]))-\(Output.text(package["name"])).tar.gz"
            // Opened 0600 before the download (never with the default mode, not through a symlink), so a file
            // that cannot be written fails before the one-time download spends the token.
            let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0o600)
            guard fd >= 0, fchmod(fd, 0o600) == 0 else {
                if fd >= 0 { close(fd) }
                throw CLIError(
                    code: .error,
                    message: "cannot write \(path): \(String(cString: strerror(errno))); nothing was downloaded")
            }
            let data: Data
            do {
                data = try await client.send(try client.request("GET", "/api/edge-packages/\(id)/download"))
            } catch {
                close(fd)
                unlink(path)
                throw error
            }
            let written = data.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            guard written == data.count, fsync(fd) == 0, close(fd) == 0 else {
                throw CLIError(
                    code: .error,
                    message:
                        "cannot write \(path); the package is now marked delivered — revoke it and create a new one")
            }
            if global.json {
                Output.printJSON([
                    "id": id, "file": path, "bytes": data.count, "join_command": package["join_command"] ?? NSNull(),
                ])
                return
            }
            print(
                "wrote \(path) (\(data.count) bytes, mode 0600); it holds the join token — move it to the edge host and delete it here"
            )
            if let command = package["join_command"] as? String {
                print("on the edge host, after extracting it:\n  \(command)")
            } else {
                print("on the edge host:\n  muster-poller install --package \(path) && muster-poller run")
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a package and its identity.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Package id") var id: String
        @Option(help: "Why (kept in the audit log)") var reason: String?

        func run() async throws {
            let package = try await global.client().json(
                "POST", "/api/edge-packages/\(id)/revoke", body: reason.map { ["reason": $0] } ?? [:])
            if global.json { Output.printJSON(package) } else { Output.package(package as? [String: Any] ?? [:]) }
        }
    }
}

struct PollerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "poller", abstract: "Pollers.", subcommands: [List.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List pollers with status and last contact.")
        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let page = try await global.client().json("GET", "/api/pollers") as? [String: Any] ?? [:]
            if global.json {
                Output.printJSON(page)
                return
            }
            Output.table(
                page["items"] as? [[String: Any]] ?? [],
                columns: [
                    ("NAME", "name"), ("STATUS", "status"), ("SITE", "site"), ("ADDRESS", "advertise_address"),
                    ("LAST CONTACT", "last_contact_at"), ("SPIFFE ID", "spiffe_id"),
                ])
        }
    }
}

struct AuditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "audit", abstract: "Read the audit log, newest first.")
    @OptionGroup var global: GlobalOptions
    @Option(help: "Only this actor, e.g. token:admin") var actor: String?
    @Option(help: "Only this action, e.g. package.create") var action: String?
    @Option(help: "Only this target id (a package id)") var target: String?
    @Option(help: "ok, denied or failed") var outcome: String?
    @Option(help: "RFC 3339 time, inclusive") var since: String?
    @Option(help: "RFC 3339 time, exclusive") var until: String?
    @Option(help: "Page size (1-1000)") var limit: Int = 100
    @Option(help: "Cursor from a previous page") var cursor: String?

    func run() async throws {
        let page =
            try await global.client().json(
                "GET", "/api/audit",
                query: [
                    "actor": actor, "action": action, "target": target, "outcome": outcome, "since": since,
                    "until": until,
                    "limit": String(limit), "cursor": cursor,
                ]) as? [String: Any] ?? [:]
        if global.json {
            Output.printJSON(page)
            return
        }
        Output.table(
            page["items"] as? [[String: Any]] ?? [],
            columns: [
                ("ID", "id"), ("AT", "at"), ("ACTOR", "actor"), ("FROM", "source_ip"), ("ACTION", "action"),
                ("TARGET", "target_id"), ("OUTCOME", "outcome"), ("REASON", "reason"),
            ])
        if let next = page["next_cursor"] as? String { print("\nmore: muster audit --cursor \(next)") }
    }
}

struct EventsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "events", abstract: "Follow lifecycle events (server-sent events) until interrupted.")
    @OptionGroup var global: GlobalOptions
    @Option(help: "Start after this event id (default: from now on; 0 for everything)") var after: Int?
    @Option(help: "Stop after this many events") var count: Int?

    func run() async throws {
        let client = try global.client()
        var request = try client.request("GET", "/api/events", query: ["after": after.map(String.init)])
        request.timeoutInterval = 24 * 3600
        let delegate = StreamDelegate()
        let session = URLSession(configuration: .default, delegate: delegate, delegateQueue: nil)
        let json = global.json
        let limit = count
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            var pending = ""
            var seen = 0
            var done = false
            var event: [String: String] = [:]
            func finish(_ error: (any Error)?) {
                guard !done else { return }
                done = true
                if let error { continuation.resume(throwing: error) } else { continuation.resume() }
            }
            delegate.onData = { data in
                pending += String(decoding: data, as: UTF8.self)
                while let newline = pending.firstIndex(of: "\n") {
                    let line = String(pending[..<newline])
                    pending.removeSubrange(...newline)
                    if line.isEmpty {
                        guard let data = event["data"] else { continue }
                        let text: String
                        if json {
                            text = #"{"id":\#(event["id"] ?? "0"),"type":"\#(event["event"] ?? "")","data":\#(data)}"#
                        } else {
                            let object =
                                (try? JSONSerialization.jsonObject(with: Data(data.utf8))) as? [String: Any] ?? [:]
                            text =
                                "\(event["id"] ?? "-")  \(event["event"] ?? "-")  \(Output.text(object["id"]))  \(Output.text(object["name"]))  \(Output.text(object["status"]))"
                        }
                        // Unbuffered, so a reader sees each event as it comes.
                        FileHandle.standardOutput.write(Data((text + "\n").utf8))
                        event = [:]
                        seen += 1
                        if let limit, seen >= limit {
                            session.invalidateAndCancel()
                            finish(nil)
                            return
                        }
                    } else if !line.hasPrefix(":"), let colon = line.firstIndex(of: ":") {
                        event[String(line[..<colon])] = String(line[line.index(after: colon)...]).trimmingCharacters(
                            in: .whitespaces)
                    }
                }
            }
            delegate.finished = { error in
                if !(200..<300).contains(delegate.status) && delegate.status != 0 {
                    finish(CoreClient.failure(status: delegate.status, body: delegate.errorBody, retryAfter: nil))
                } else if let error {
                    finish(CLIError(code: .error, message: "event stream ended: \(error.localizedDescription)"))
                } else {
                    finish(nil)
                }
            }
            session.dataTask(with: request).resume()
        }
    }
}
