import ArgumentParser
import Foundation
import MusterCore
import MusterIdentity
import MusterStore

/// Flags shared by `serve` and `token create`; each falls back to `MUSTER_*`, then the config file, then a default.
struct CoreOptions: ParsableArguments {
    @Option(
        name: .customLong("config"),
        help:
            "JSON config file (keys: data_dir, http_listen, grpc_listen, advertise, database, trust_domain, nats, token_key_file, create_rate_limit, refusal_audit_rate, reaper_interval, event_poll_interval, console_idle_timeout, svid_ttl, poller_ca_ttl)"
    )
    var configFile: String?
    @Option(
        name: .customLong("data-dir"),
        help: "Data directory (CA, token key, SQLite database, admin.token). Env MUSTER_DATA_DIR")
    var dataDirectory: String?
    @Option(name: .customLong("http-listen"), help: "HTTP API address (default 127.0.0.1:8080). Env MUSTER_HTTP_LISTEN")
    var httpListen: String?
    @Option(
        name: .customLong("grpc-listen"),
        help: "gRPC address for pollers (default 0.0.0.0:50051). Env MUSTER_GRPC_LISTEN")
    var grpcListen: String?
    @Option(help: "host:port pollers dial (default: the gRPC address). Env MUSTER_ADVERTISE")
    var advertise: String?
    @Option(
        help: "sqlite:PATH or postgres://user@host:port/db (default sqlite:DATA_DIR/muster.db). Env MUSTER_DATABASE")
    var database: String?
    @Option(
        name: .customLong("trust-domain"), help: "SPIFFE trust domain (default muster.local). Env MUSTER_TRUST_DOMAIN")
    var trustDomain: String?
    @Option(help: "NATS URL for events, e.g. nats://127.0.0.1:4222. Env MUSTER_NATS")
    var nats: String?
    @Option(name: .customLong("spire-socket"), help: "SPIRE Server admin socket (not supported yet)")
    var spireSocket: String?
    @Option(
        name: .customLong("token-key-file"),
        help:
            "File with the 32-byte key that seals join tokens (default DATA_DIR/token.key). Env MUSTER_TOKEN_KEY_FILE; MUSTER_TOKEN_KEY gives the key in base64"
    )
    var tokenKeyFile: String?
    @Option(
        name: .customLong("create-rate-limit"),
        help: "Package creations per token per minute (default 10). Env MUSTER_CREATE_RATE_LIMIT")
    var createRateLimit: Int?
    @Option(
        name: .customLong("refusal-audit-rate"),
        help:
            "Audit rows per minute for refused callers, per source address (burst: the same number, at least 20; the rest are counted in one audit.suppressed row; default 30). Env MUSTER_REFUSAL_AUDIT_RATE"
    )
    var refusalAuditRate: Int?
    @Option(
        name: .customLong("reaper-interval"),
        help: "Seconds between expiry sweeps (default 5). Env MUSTER_REAPER_INTERVAL")
    var reaperInterval: Double?
    @Option(
        name: .customLong("event-poll-interval"),
        help:
            "Seconds an idle event reader waits before reading again without a wake-up (default 30; 0.05–300). Env MUSTER_EVENT_POLL_INTERVAL"
    )
    var eventPollInterval: Double?
    @Option(
        name: .customLong("console-idle-timeout"),
        help:
            "Seconds a web console session may sit idle before it ends (5–86400, default 1800; sessions end after 12 h regardless). Env MUSTER_CONSOLE_IDLE_TIMEOUT"
    )
    var consoleIdleTimeout: Int?
    @Option(
        name: .customLong("svid-ttl"),
        help:
            "Lifetime in seconds of the SVIDs Core issues: its own and pollers' (30–86400, default 3600). Env MUSTER_SVID_TTL"
    )
    var svidTTL: Int?
    @Option(
        name: .customLong("poller-ca-ttl"),
        help: "Lifetime in seconds of pollers' downstream CAs (60–604800, default 86400). Env MUSTER_POLLER_CA_TTL")
    var pollerCATTL: Int?

    func resolve() throws -> CoreConfiguration {
        let environment = ProcessInfo.processInfo.environment
        var file: [String: Any] = [:]
        if let path = configFile {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw ValidationError("cannot read config file \(path)")
            }
            guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw ValidationError("config file \(path) is not a JSON object")
            }
            let known: Set<String> = [
                "data_dir", "http_listen", "grpc_listen", "advertise", "database", "trust_domain", "nats",
                "token_key_file", "create_rate_limit", "refusal_audit_rate", "reaper_interval", "event_poll_interval",
                "svid_ttl", "poller_ca_ttl", "console_idle_timeout",
            ]
            if let unknown = object.keys.first(where: { !known.contains($0) }) {
                throw ValidationError("config file \(path): unknown key '\(unknown)'")
            }
            file = object
        }
        func pick(_ flag: String?, _ env: String, _ key: String) -> String? {
            flag ?? environment[env].flatMap { $0.isEmpty ? nil : $0 } ?? (file[key].map { "\($0)" })
        }
        if spireSocket != nil {
            throw ValidationError(
                "--spire-socket: SPIRE mode is not available in this build; omit it to use the embedded CA")
        }
        let dataDirectory = pick(dataDirectory, "MUSTER_DATA_DIR", "data_dir") ?? "./muster-data"
        var database: DatabaseLocation?
        if let text = pick(self.database, "MUSTER_DATABASE", "database") {
            do { database = try DatabaseLocation(parsing: text) } catch {
                throw ValidationError("--database: \(error)")
            }
        }
        let rate =
            try pick(createRateLimit.map(String.init), "MUSTER_CREATE_RATE_LIMIT", "create_rate_limit").map {
                text -> Int in
                guard let value = Int(text), value > 0 else {
                    throw ValidationError("create rate limit must be a positive integer")
                }
                return value
            } ?? 10
        let auditRate =
            try pick(refusalAuditRate.map(String.init), "MUSTER_REFUSAL_AUDIT_RATE", "refusal_audit_rate").map {
                text -> Int in
                guard let value = Int(text), value > 0 else {
                    throw ValidationError("refusal audit rate must be a positive integer")
                }
                return value
            } ?? 30
        let reaper =
            try pick(reaperInterval.map { String($0) }, "MUSTER_REAPER_INTERVAL", "reaper_interval").map {
                text -> Double in
                guard let value = Double(text), value > 0 else {
                    throw ValidationError("reaper interval must be a positive number of seconds")
                }
                return value
            } ?? 5
        let eventPoll =
            try pick(eventPollInterval.map { String($0) }, "MUSTER_EVENT_POLL_INTERVAL", "event_poll_interval").map {
                text -> Double in
                guard let value = Double(text), (0.05...300).contains(value) else {
                    throw ValidationError("event poll interval must be 0.05–300 seconds")
                }
                return value
            } ?? 30
        func seconds(_ flag: Int?, _ env: String, _ key: String, _ range: ClosedRange<Int>, default value: Int) throws
            -> TimeInterval
        {
            guard let text = pick(flag.map(String.init), env, key) else { return TimeInterval(value) }
            guard let number = Int(text), range.contains(number) else {
                throw ValidationError(
                    "--\(key.replacingOccurrences(of: "_", with: "-")) must be \(range.lowerBound)–\(range.upperBound) seconds"
                )
            }
            return TimeInterval(number)
        }
        let svidTTL = try seconds(self.svidTTL, "MUSTER_SVID_TTL", "svid_ttl", 30...86_400, default: 3600)
        let caTTL = try seconds(
            self.pollerCATTL, "MUSTER_POLLER_CA_TTL", "poller_ca_ttl", 60...604_800, default: 86_400)
        let consoleIdle = try seconds(
            consoleIdleTimeout, "MUSTER_CONSOLE_IDLE_TIMEOUT", "console_idle_timeout", 5...86_400, default: 1800)
        let grpcListen = pick(self.grpcListen, "MUSTER_GRPC_LISTEN", "grpc_listen") ?? "0.0.0.0:50051"
        let httpListen = pick(self.httpListen, "MUSTER_HTTP_LISTEN", "http_listen") ?? "127.0.0.1:8080"
        for (name, value) in [("--http-listen", httpListen), ("--grpc-listen", grpcListen)] {
            do { _ = try HostPort.parse(value) } catch { throw ValidationError("\(name): '\(value)' is not host:port") }
        }
        var configuration = CoreConfiguration(
            dataDirectory: URL(fileURLWithPath: dataDirectory).standardizedFileURL.path,
            httpListen: httpListen, grpcListen: grpcListen,
            advertise: pick(advertise, "MUSTER_ADVERTISE", "advertise"),
            database: database,
            trustDomain: pick(trustDomain, "MUSTER_TRUST_DOMAIN", "trust_domain") ?? "muster.local",
            natsURL: pick(nats, "MUSTER_NATS", "nats"),
            tokenKeyFile: pick(tokenKeyFile, "MUSTER_TOKEN_KEY_FILE", "token_key_file"),
            tokenKeyBase64: environment["MUSTER_TOKEN_KEY"],
            createRatePerMinute: rate, refusalAuditPerMinute: auditRate, reaperInterval: reaper, leafTTL: svidTTL,
            pollerCATTL: caTTL
        )
        configuration.eventPollInterval = eventPoll
        configuration.consoleIdleTimeout = consoleIdle
        return configuration
    }
}
