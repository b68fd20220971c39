import ArgumentParser
import Foundation
import Logging
import MusterAgent
import MusterEdge
import MusterIdentity

/// `muster-agent`: an agent or checker on an edge segment. Gets its SVID from its poller (never from Core)
/// with a package or a join command, and keeps it renewed.
struct AgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "muster-agent", abstract: "Muster's edge agent and checker.", subcommands: [Install.self, Join.self, Run.self, Status.self]
    )

    struct Install: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Install an agent or checker package and join the poller it names.")
        @Option(help: "The package tar.gz downloaded from Core") var package: String
        @Option(help: "State directory") var dir: String = "/var/lib/muster-agent"
        @Option(help: "host:port of the poller (default: the package's)") var poller: String?

        func run() async throws {
            let id = try await AgentInstall.install(archive: package, into: dir, poller: poller)
            print("joined as \(id); identity in \(dir)/identity; next: muster-agent run --dir \(dir)")
        }
    }

    struct Join: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Join a poller with a join token (the one-line join command).")
        @Option(help: "host:port of the poller") var poller: String
        @Option(help: "The join token") var token: String
        @Option(name: .customLong("ca-pin"), help: "sha256:HEX pin of the trust domain's root CA") var caPin: String
        @Option(help: "agent or checker (the package decides; a mismatch is reported)") var type: String?
        @Option(help: "State directory") var dir: String = "/var/lib/muster-agent"

        func validate() throws {
            if let type, !["agent", "checker"].contains(type) { throw ValidationError("--type must be agent or checker") }
        }

        func run() async throws {
            let state = AgentState(directory: dir)
            if state.hasIdentity { throw AgentError("\(dir) already holds an identity; use another --dir or remove \(dir)/identity") }
            let id = try await AgentOnboarding.join(.init(poller: poller, token: token, caPin: caPin, expectedType: type), state: state)
            print("joined as \(id); identity in \(dir)/identity; next: muster-agent run --dir \(dir)")
        }
    }

    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Keep the SVID renewed through the poller (at half-life).")
        @Option(help: "State directory") var dir: String = "/var/lib/muster-agent"
        @Option(name: .customLong("workload-socket"), help: "SPIFFE Workload API socket (not served by this build)") var workloadSocket: String?

        func validate() throws {
            if workloadSocket != nil { throw ValidationError("--workload-socket: the SPIFFE Workload API is not served by this build") }
        }

        func run() async throws {
            var logger = Logger(label: "muster.agent")
            logger.logLevel = ProcessInfo.processInfo.environment["MUSTER_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .info
            try await AgentRunner(state: AgentState(directory: dir), logger: logger).run()
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The identity held and whether the poller answers.")
        @Option(help: "State directory") var dir: String = "/var/lib/muster-agent"

        func run() async throws {
            let status = await AgentStatus.read(state: AgentState(directory: dir))
            for line in status.lines { print(line) }
            if !status.reachable { throw ExitCode(3) }
        }
    }
}

do {
    let command = try AgentCommand.parseAsRoot()
    switch command {
    case let install as AgentCommand.Install: try await install.run()
    case let join as AgentCommand.Join: try await join.run()
    case let run as AgentCommand.Run: try await run.run()
    case let status as AgentCommand.Status: try await status.run()
    default:
        var command = command
        try command.run()
    }
} catch let error as InstallError {
    FileHandle.standardError.write(Data("muster-agent: \(error.message)\n".utf8))
    exit(1)
} catch let error as AgentError {
    FileHandle.standardError.write(Data("muster-agent: \(error.message)\n".utf8))
    exit(error.revoked ? 4 : 1)
} catch {
    let code = AgentCommand.exitCode(for: error)
    if code == .success { AgentCommand.exit(withError: error) }
    if let exit = error as? ExitCode { Foundation.exit(exit.rawValue) }
    let message = AgentCommand.message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
    FileHandle.standardError.write(Data("muster-agent: \(message)\n".utf8))
    exit(code == .validationFailure ? 2 : 1)
}
