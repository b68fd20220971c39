import Foundation

/// How the store talks TLS to PostgreSQL, by libpq's `sslmode` names and meaning.
public struct PostgresTLS: Sendable, Equatable {
    public enum Mode: String, Sendable, CaseIterable {
        /// Plaintext only.
        case disable
        /// TLS if the server offers it, unverified; plaintext otherwise (libpq's default, and Muster's).
        case prefer
        /// TLS or nothing; the certificate is verified only when `sslrootcert` is given (as libpq does).
        case require
        /// TLS; the server's chain must verify against `sslrootcert`.
        case verifyCA = "verify-ca"
        /// TLS; the chain must verify and the certificate must name the host (DNS name, or IP address).
        case verifyFull = "verify-full"
    }

    public var mode: Mode
    /// A PEM file of the CAs that may sign the server's certificate.
    public var rootCertificate: String?

    public init(mode: Mode = .prefer, rootCertificate: String? = nil) {
        self.mode = mode
        self.rootCertificate = rootCertificate
    }
}

/// Where the store lives: an SQLite file or a PostgreSQL server, parsed from `sqlite:PATH` or `postgres://…`.
public enum DatabaseLocation: Sendable, Equatable, CustomStringConvertible {
    case sqlite(path: String)
    case postgres(
        host: String, port: Int, user: String, password: String?, database: String, tls: PostgresTLS = PostgresTLS())

    /// Parses `sqlite:PATH`, `sqlite://PATH` or `postgres://user[:password]@host[:port]/database[?sslmode=…&sslrootcert=PATH]`.
    public init(parsing text: String) throws {
        if text.hasPrefix("sqlite:") {
            var path = String(text.dropFirst("sqlite:".count))
            if path.hasPrefix("//") { path.removeFirst(2) }
            guard !path.isEmpty else { throw StoreError(.invalid, "sqlite location has no path (want sqlite:PATH)") }
            self = .sqlite(path: path)
            return
        }
        guard text.hasPrefix("postgres://") || text.hasPrefix("postgresql://"),
            let url = URLComponents(string: text), let host = url.host, !host.isEmpty
        else {
            throw StoreError(.invalid, "database must be sqlite:PATH or postgres://user@host:port/database")
        }
        let database = url.path.hasPrefix("/") ? String(url.path.dropFirst()) : url.path
        guard !database.isEmpty else { throw StoreError(.invalid, "postgres URL names no database") }
        var tls = PostgresTLS()
        for item in url.queryItems ?? [] {
            switch item.name {
            case "sslmode":
                guard let mode = item.value.flatMap(PostgresTLS.Mode.init(rawValue:)) else {
                    throw StoreError(
                        .invalid,
                        "sslmode must be one of \(PostgresTLS.Mode.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                tls.mode = mode
            case "sslrootcert":
                guard let path = item.value, !path.isEmpty else {
                    throw StoreError(.invalid, "sslrootcert needs a file path")
                }
                tls.rootCertificate = path
            default:
                throw StoreError(
                    .invalid, "unknown postgres URL parameter '\(item.name)' (known: sslmode, sslrootcert)")
            }
        }
        if [.verifyCA, .verifyFull].contains(tls.mode), tls.rootCertificate == nil {
            throw StoreError(
                .invalid,
                "sslmode=\(tls.mode.rawValue) needs sslrootcert=PATH (the CA that signs the server's certificate)")
        }
        self = .postgres(
            host: host, port: url.port ?? 5432, user: url.user ?? "postgres",
            password: url.password, database: database, tls: tls
        )
    }

    /// The location with any password left out, for logs.
    public var description: String {
        switch self {
        case .sqlite(let path): return "sqlite:\(path)"
        case .postgres(let host, let port, let user, _, let database, let tls):
            return "postgres://\(user)@\(host):\(port)/\(database)?sslmode=\(tls.mode.rawValue)"
        }
    }

    public var isPostgres: Bool {
        if case .postgres = self { return true }
        return false
    }
}
