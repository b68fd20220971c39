import ArgumentParser
import Foundation
import Logging
import MusterCore
import MusterRuntime
import MusterStore

/// `muster-core`: Core's control plane.
struct CoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "muster-core", abstract: "Muster Core: package store, identity authority, operator API.",
        subcommands: [Serve.self, Token.self]
    )
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run Core (creates the CA, database and admin token on first start).")
    @OptionGroup var options: CoreOptions

    func run() async throws {
        let configuration = try options.resolve()
        try await CoreServer.run(configuration, logger: makeLogger())
    }
}

struct Token: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Operator API tokens.", subcommands: [Create.self, Revoke.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Mint a token; it is printed once on stdout and stored only as a hash.")
        @OptionGroup var options: CoreOptions
        @Option(help: "Comma-separated scopes: config:read, config:write, audit:read, admin")
        var scopes: String
        @Option(help: "A name for the token (shown as the actor in audit rows)")
        var name: String = "operator"

        func run() async throws {
            let scopes: [Scope]
            do { scopes = try Scope.parseList(self.scopes) } catch { throw ValidationError("--scopes: \(error)") }
            let configuration = try options.resolve()
            var logger = makeLogger()
            logger.logLevel = .warning
            let store = try await CoreServer.openStore(configuration, logger: logger)
            let token = try await OperatorTokens.mint(
                name: name, scopes: scopes, createdBy: "cli:muster-core", store: store)
            await store.shutdown()
            print(token)
        }
    }
}

extension Token {
    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Revoke every live token with this name; its API calls and console sessions stop at once.")
        @OptionGroup var options: CoreOptions
        @Option(help: "The token's name (as given to token create)") var name: String

        func run() async throws {
            let configuration = try options.resolve()
            var logger = makeLogger()
            logger.logLevel = .warning
            let store = try await CoreServer.openStore(configuration, logger: logger)
            let count = try await OperatorTokens.revoke(name: name, by: "cli:muster-core", store: store)
            await store.shutdown()
            guard count > 0 else { throw CoreError(.invalidConfiguration, "no live token is named '\(name)'") }
            print("revoked \(count) token\(count == 1 ? "" : "s") named \(name)")
        }
    }
}

func makeLogger() -> Logger { Runtime.bootstrapLogging(label: "muster.core") }

await Runtime.main(CoreCommand.self, program: "muster-core") { command in
    switch command {
    case let serve as Serve: try await serve.run()
    case let create as Token.Create: try await create.run()
    case let revoke as Token.Revoke: try await revoke.run()
    default:
        var command = command
        try command.run()
    }
}
