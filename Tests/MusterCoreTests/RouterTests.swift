import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import MusterGRPC
import MusterIdentity
import MusterStore
import Testing

@testable import MusterCore

/// Core's HTTP routes in process (no sockets): the route table, scopes, and the one mapping of domain errors to
/// statuses, over a real SQLite store in a temporary directory. The black-box suites still run the processes.
struct CoreApp {
    let app: Application<RouterResponder<CoreRequestContext>>
    let store: Store
    let admin: String
    let reader: String

    static func make() async throws -> CoreApp {
        let logger = Logger(label: "muster.core.test")
        let directory = FileManager.default.temporaryDirectory.appending(path: "muster-router-\(UUID())").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let store = Store(location: .sqlite(path: directory + "/core.db"), connections: 2, logger: logger)
        try await store.migrate()
        let authority = try EmbeddedAuthority(directory: directory + "/ca", trustDomain: "router.test")
        let identity = CoreIdentity(authority: authority, bundle: authority.bundle(), advertise: "127.0.0.1:50051")
        let hub = EventHub(store: store, logger: logger)
        let metrics = CoreMetrics()
        let packages = PackageService(
            store: store, sealer: TokenSealer(key: .init(size: .bits256)), identity: identity, events: hub,
            metrics: metrics, logger: logger)
        let api = CoreAPI(
            packages: packages, hub: hub, metrics: metrics, limiter: RateLimiter(perMinute: 1000), identity: identity,
            logger: logger)
        return CoreApp(
            app: Application(router: api.router(), logger: logger), store: store,
            admin: try await OperatorTokens.mint(name: "admin", scopes: [.admin], createdBy: "test", store: store),
            reader: try await OperatorTokens.mint(
                name: "reader", scopes: [.configRead], createdBy: "test", store: store)
        )
    }

    static func json(_ buffer: ByteBuffer) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(buffer.readableBytesView)) as? [String: Any] ?? [:]
    }
}

@Suite("Core HTTP routes in process")
struct RouterTests {
    func bearer(_ token: String) -> HTTPFields {
        [.authorization: "Bearer \(token)", .contentType: "application/json"]
    }

    @Test("public routes answer without a token; a bad query is 400 with the JSON error shape")
    func publicRoutes() async throws {
        let core = try await CoreApp.make()
        try await core.app.test(.router) { client in
            try await client.execute(uri: "/healthz", method: .get) { #expect($0.status == .ok) }
            try await client.execute(uri: "/api/trust-bundle", method: .get) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body).contains("BEGIN CERTIFICATE"))
            }
            try await client.execute(uri: "/api/trust-bundle?format=der", method: .get) { response in
                #expect(response.status == .badRequest)
                let json = try CoreApp.json(response.body)
                #expect(json["error"] as? String == "bad_request")
            }
        }
        await core.store.shutdown()
    }

    @Test(
        "scopes: no token 401, a read token reads but cannot create or revoke (403); an unknown path 404, a wrong method 405 with Allow"
    )
    func scopes() async throws {
        let core = try await CoreApp.make()
        try await core.app.test(.router) { client in
            try await client.execute(uri: "/api/edge-packages", method: .get) { response in
                #expect(response.status == .unauthorized)
                let json = try CoreApp.json(response.body)
                #expect(json["error"] as? String == "unauthorized")
            }
            try await client.execute(uri: "/api/edge-packages", method: .get, headers: bearer(core.reader)) {
                #expect($0.status == .ok)
            }
            let body = ByteBuffer(string: #"{"name": "edge-1", "component_type": "poller"}"#)
            try await client.execute(uri: "/api/edge-packages", method: .post, headers: bearer(core.reader), body: body)
            { response in
                #expect(response.status == .forbidden)
                #expect(String(buffer: response.body).contains("config:write"))
            }
            try await client.execute(uri: "/api/nothing-here", method: .get) { #expect($0.status == .notFound) }
            try await client.execute(uri: "/api/edge-packages", method: .delete, headers: bearer(core.admin)) {
                response in
                #expect(response.status == .methodNotAllowed)
                #expect(response.headers[.allow] == "POST, GET")
            }
        }
        let listed = try await core.store.listPackages(.init())
        #expect(listed.items.isEmpty, "the refused create stored nothing")
        await core.store.shutdown()
    }

    @Test(
        "domain errors map to statuses in one place: 422 without a live poller, 409 twice the same ID, 404, 410 on a second download"
    )
    func domainErrors() async throws {
        let core = try await CoreApp.make()
        try await core.app.test(.router) { client in
            let agent = ByteBuffer(string: #"{"name": "a1", "component_type": "agent", "poller_id": "ghost"}"#)
            try await client.execute(uri: "/api/edge-packages", method: .post, headers: bearer(core.admin), body: agent)
            { response in
                #expect(response.status == .unprocessableContent)
                let json = try CoreApp.json(response.body)
                #expect(json["error"] as? String == "unprocessable")
            }
            let poller = ByteBuffer(string: #"{"name": "edge-1", "component_type": "poller"}"#)
            var id = ""
            try await client.execute(
                uri: "/api/edge-packages", method: .post, headers: bearer(core.admin), body: poller
            ) { response in
                #expect(response.status == .created)
                id = try CoreApp.json(response.body)["id"] as? String ?? ""
            }
            try await client.execute(
                uri: "/api/edge-packages", method: .post, headers: bearer(core.admin), body: poller
            ) { response in
                #expect(response.status == .conflict)
            }
            try await client.execute(uri: "/api/edge-packages/no-such-id", method: .get, headers: bearer(core.admin)) {
                response in
                #expect(response.status == .notFound)
                let json = try CoreApp.json(response.body)
                #expect(json["message"] as? String == "no package with id no-such-id")
            }
            try await client.execute(
                uri: "/api/edge-packages/\(id)/download", method: .get, headers: bearer(core.admin)
            ) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentType] == "application/gzip")
            }
            try await client.execute(
                uri: "/api/edge-packages/\(id)/download", method: .get, headers: bearer(core.admin)
            ) { response in
                #expect(response.status == .gone)
            }
            let revoke = ByteBuffer(string: #"{"reason": "test"}"#)
            try await client.execute(
                uri: "/api/edge-packages/\(id)/revoke", method: .post, headers: bearer(core.admin), body: revoke
            ) {
                #expect($0.status == .ok)
            }
            try await client.execute(
                uri: "/api/edge-packages/\(id)/revoke", method: .post, headers: bearer(core.admin), body: revoke
            ) {
                #expect($0.status == .conflict)
            }
        }
        await core.store.shutdown()
    }

    @Test("every domain error code has its HTTP status and gRPC code; internal failures never show their cause")
    func mappingTable() {
        let table: [(DomainError.Code, Int, RPCError.Code)] = [
            (.invalid, 400, .invalidArgument), (.notFound, 404, .notFound), (.conflict, 409, .failedPrecondition),
            (.gone, 410, .failedPrecondition), (.unprocessable, 422, .failedPrecondition),
            (.unauthenticated, 401, .unauthenticated),
            (.permissionDenied, 403, .permissionDenied), (.cannotIssue, 422, .invalidArgument),
            (.unavailable, 503, .unavailable),
            (.internalFailure, 500, .unavailable),
        ]
        for (code, status, rpc) in table {
            let error = DomainError(code, "m")
            #expect(APIError(error).code.status == status, "\(code)")
            #expect(RPCError(error).code == rpc, "\(code)")
        }
        struct Secret: Error, CustomStringConvertible { var description: String { "password=hunter2" } }
        let hidden = DomainError(Secret())
        #expect(hidden.code == .internalFailure && !hidden.message.contains("hunter2"))
        #expect(DomainError(StoreError(.conflict, "x")).code == .conflict)
        #expect(DomainError(IdentityError(.csrMalformed, "x")).code == .cannotIssue)
    }
}
