import Foundation
import Logging
import MusterIdentity
import MusterStore
import Testing

@testable import MusterCore

/// The databases every store test runs on: a fresh SQLite file always, and a fresh PostgreSQL database
/// when the test script has started a server (`MUSTER_TEST_POSTGRES_URL`, e.g. postgres://postgres@127.0.0.1:55432/postgres).
enum Backend: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case sqlite, postgres

    static var available: [Backend] {
        ProcessInfo.processInfo.environment["MUSTER_TEST_POSTGRES_URL"] == nil ? [.sqlite] : [.sqlite, .postgres]
    }

    var testDescription: String { rawValue }

    static let logger = Logger(label: "muster.test")

    /// A new, migrated, empty store.
    func makeStore(connections: Int = 8) async throws -> Store {
        switch self {
        case .sqlite:
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
                "muster-store-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            let store = Store(
                location: .sqlite(path: directory.path + "/test.db"), connections: connections, logger: Self.logger)
            try await store.migrate()
            return store
        case .postgres:
            let name = "muster_t_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(12).lowercased()
            let admin = Database(
                location: try DatabaseLocation(parsing: Self.postgresURL), connections: 1, logger: Self.logger)
            try await admin.read { try await $0.raw("CREATE DATABASE \(unsafeRaw: name)").run() }
            await admin.shutdown()
            let store = Store(
                location: try Self.postgres(database: name), connections: connections, logger: Self.logger)
            try await store.migrate()
            return store
        }
    }

    /// A second store on the same database as `store` (another Core replica's pool).
    func sibling(of store: Store, connections: Int = 8) -> Store {
        Store(location: store.location, connections: connections, logger: Self.logger)
    }

    static var postgresURL: String { ProcessInfo.processInfo.environment["MUSTER_TEST_POSTGRES_URL"] ?? "" }

    static func postgres(database: String) throws -> DatabaseLocation {
        guard
            case .postgres(let host, let port, let user, let password, _, let tls) = try DatabaseLocation(
                parsing: postgresURL)
        else {
            throw StoreError(.invalid, "MUSTER_TEST_POSTGRES_URL is not a postgres URL")
        }
        return .postgres(host: host, port: port, user: user, password: password, database: database, tls: tls)
    }
}

/// A PackageService over a test store, with a fresh CA.
struct Harness {
    let store: Store
    let packages: PackageService
    let identity: CoreIdentity
    let admin = Principal(name: "token:test", scopes: [.admin], sourceIP: "192.0.2.7")

    init(store: Store) throws {
        self.store = store
        let authority = try CertificateAuthority.createRoot(trustDomain: "test.example")
        let bundle = TrustBundle(trustDomain: "test.example", roots: [authority.certificate])
        identity = CoreIdentity(
            authority: EmbeddedAuthority(root: authority, bundle: bundle), bundle: bundle, advertise: "127.0.0.1:50051")
        packages = PackageService(
            store: store, sealer: TokenSealer(key: .init(size: .bits256)), identity: identity,
            events: EventHub(store: store), metrics: CoreMetrics(), logger: Backend.logger)
    }

    @discardableResult
    func poller(_ name: String = "edge-1", ttl: Int64 = 900) async throws -> PackageView {
        try await packages.create(
            PackageRequest(name: name, componentType: .poller, site: "lab", ttlSeconds: ttl), by: admin)
    }

    @discardableResult
    func agent(_ name: String, poller: String = "edge-1", ttl: Int64 = 900) async throws -> PackageView {
        try await packages.create(
            PackageRequest(name: name, componentType: .agent, pollerName: poller, ttlSeconds: ttl), by: admin)
    }
}
