import Foundation
import MusterErrors
import MusterIdentity
import MusterStore

/// Everything `muster-core serve` is told: flags, `MUSTER_*` variables or a config file, in that order of precedence.
public struct CoreConfiguration: Sendable {
    public var dataDirectory: String
    public var httpListen: String
    public var grpcListen: String
    /// host:port pollers dial; written into poller packages and Core's serving SVID.
    public var advertise: String
    public var database: DatabaseLocation
    public var trustDomain: String
    public var natsURL: String?
    /// A file holding the 32-byte AES key that seals join tokens (default `DIR/token.key`, made on first start).
    public var tokenKeyFile: String?
    /// Base64 AES key given directly (`MUSTER_TOKEN_KEY`); wins over the file.
    public var tokenKeyBase64: String?
    /// Package creations allowed per token per minute.
    public var createRatePerMinute: Int
    /// Audit rows per source and minute for refused callers (the rest are counted, see `RefusalAuditor`).
    public var refusalAuditPerMinute: Int
    public var reaperInterval: TimeInterval
    /// Seconds an idle event reader (package stream, SSE, NATS) waits before reading again without a wake-up.
    public var eventPollInterval: TimeInterval = 30
    /// Seconds a web console session may sit idle before it ends.
    public var consoleIdleTimeout: TimeInterval = 1800
    /// Lifetime of the SVIDs Core issues (its own serving SVID and pollers').
    public var leafTTL: TimeInterval
    /// Lifetime of a poller's downstream CA.
    public var pollerCATTL: TimeInterval
    public var databaseConnections: Int

    public init(
        dataDirectory: String, httpListen: String = "127.0.0.1:8080", grpcListen: String = "0.0.0.0:50051",
        advertise: String? = nil, database: DatabaseLocation? = nil, trustDomain: String = "muster.local",
        natsURL: String? = nil, tokenKeyFile: String? = nil, tokenKeyBase64: String? = nil,
        createRatePerMinute: Int = 10, refusalAuditPerMinute: Int = 30, reaperInterval: TimeInterval = 5,
        leafTTL: TimeInterval = 3600,
        pollerCATTL: TimeInterval = 24 * 3600, databaseConnections: Int = 8
    ) {
        self.dataDirectory = dataDirectory
        self.httpListen = httpListen
        self.grpcListen = grpcListen
        self.advertise = advertise ?? CoreConfiguration.defaultAdvertise(grpcListen: grpcListen)
        self.database = database ?? .sqlite(path: dataDirectory + "/muster.db")
        self.trustDomain = trustDomain
        self.natsURL = natsURL
        self.tokenKeyFile = tokenKeyFile
        self.tokenKeyBase64 = tokenKeyBase64
        self.createRatePerMinute = createRatePerMinute
        self.refusalAuditPerMinute = refusalAuditPerMinute
        self.reaperInterval = reaperInterval
        self.leafTTL = leafTTL
        self.pollerCATTL = pollerCATTL
        self.databaseConnections = databaseConnections
    }

    /// The gRPC listen address, with a wildcard host replaced by 127.0.0.1.
    static func defaultAdvertise(grpcListen: String) -> String {
        guard let (host, port) = try? HostPort.parse(grpcListen) else { return grpcListen }
        return (host == "0.0.0.0" || host == "::" || host.isEmpty) ? "127.0.0.1:\(port)" : grpcListen
    }
}

/// A Core failure outside a request: configuration, start-up, data directory.
public typealias CoreError = Failure<CoreErrorCode>

/// What failed outside a request: configuration, start-up, data directory.
public struct CoreErrorCode: NamedErrorCode {
    public let name: String
    public static let invalidConfiguration = CoreErrorCode(name: "invalid_configuration")
    public static let dataDirectory = CoreErrorCode(name: "data_directory")
    public static let secrets = CoreErrorCode(name: "secrets")
}
