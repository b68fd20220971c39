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
    static let configuration = CommandConfiguration(abstract: "Operator API tokens.", subcommands: [Create.self])

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

func makeLogger() -> Logger { Runtime.bootstrapLogging(label: "muster.core") }

await Runtime.main(CoreCommand.self, program: "muster-core") { command in
    switch command {
    case let serve as Serve: try await serve.run()
    case let create as Token.Create: try await create.run()
    default:
        var command = command
        try command.run()
    }
}
