import Foundation

/// Where the store lives: an SQLite file or a PostgreSQL server, parsed from `sqlite:PATH` or `postgres://…`.
public enum DatabaseLocation: Sendable, Equatable, CustomStringConvertible {
    case sqlite(path: String)
    case postgres(host: String, port: Int, user: String, password: String?, database: String)

    /// Parses `sqlite:PATH`, `sqlite://PATH` or `postgres://user[:password]@host[:port]/database`.
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
        self = .postgres(
            host: host, port: url.port ?? 5432, user: url.user ?? "postgres",
            password: url.password, database: database
        )
    }

    /// The location with any password left out, for logs.
    public var description: String {
        switch self {
        case .sqlite(let path): return "sqlite:\(path)"
        case .postgres(let host, let port, let user, _, let database): return "postgres://\(user)@\(host):\(port)/\(database)"
        }
    }

    public var isPostgres: Bool {
        if case .postgres = self { return true }
        return false
    }
}
