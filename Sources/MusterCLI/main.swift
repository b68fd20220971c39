import ArgumentParser
import Foundation

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// `muster`: the operator's terminal tool over Core's HTTP API.
struct Muster: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "muster",
        abstract: "Operate Muster Core: onboarding packages, enrollments, pollers, audit, events.",
        discussion: "Exit codes: 0 ok, 1 error, 2 usage, 3 auth, 4 not found, 5 conflict.",
        subcommands: [
            PackageCommand.self, EnrollmentCommand.self, PollerCommand.self, AuditCommand.self, EventsCommand.self,
        ]
    )
}

/// Where Core is and who we are: flags, else MUSTER_CORE_URL / MUSTER_TOKEN.
struct GlobalOptions: ParsableArguments {
    @Option(help: "Core's HTTP URL (env MUSTER_CORE_URL; default http://127.0.0.1:8080)")
    var core: String?
    @Option(help: "Operator bearer token (env MUSTER_TOKEN)")
    var token: String?
    @Flag(help: "Print JSON instead of a table")
    var json = false

    func client() throws -> CoreClient {
        let environment = ProcessInfo.processInfo.environment
        let token = self.token ?? environment["MUSTER_TOKEN"]
        guard let token, !token.isEmpty else {
            throw CLIError(
                code: .auth,
                message: "no token: pass --token or set MUSTER_TOKEN (e.g. the contents of DATA_DIR/admin.token)")
        }
        return try CoreClient(core: core ?? environment["MUSTER_CORE_URL"] ?? "http://127.0.0.1:8080", token: token)
    }
}

let exitCode: ExitCode
do {
    let command = try Muster.parseAsRoot()
    switch command {
    case let c as PackageCommand.Create: try await c.run()
    case let c as PackageCommand.List: try await c.run()
    case let c as PackageCommand.Show: try await c.run()
    case let c as PackageCommand.Download: try await c.run()
    case let c as PackageCommand.Revoke: try await c.run()
    case let c as EnrollmentCommand.List: try await c.run()
    case let c as EnrollmentCommand.Show: try await c.run()
    case let c as EnrollmentCommand.Approve: try await c.run()
    case let c as EnrollmentCommand.Deny: try await c.run()
    case let c as PollerCommand.List: try await c.run()
    case let c as AuditCommand: try await c.run()
    case let c as EventsCommand: try await c.run()
    default:
        var command = command
        try command.run()
    }
    exitCode = .ok
} catch let error as CLIError {
    FileHandle.standardError.write(Data("muster: \(Output.printable(error.message))\n".utf8))
    exitCode = error.code
} catch {
    let code = Muster.exitCode(for: error)
    if code == .success { Muster.exit(withError: error) }
    let message = Muster.message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
    FileHandle.standardError.write(Data("muster: \(message)\n".utf8))
    exitCode = code == .validationFailure ? .usage : .error
}
exit(exitCode.rawValue)
