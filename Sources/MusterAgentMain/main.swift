import ArgumentParser
import Foundation
import Logging
import MusterAgent
import MusterEdge
import MusterIdentity
import MusterRuntime

/// `muster-agent`: an agent or checker on an edge segment. Gets its SVID from its poller (never from Core)
/// with a package or a join command, and keeps it renewed.
struct AgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "muster-agent", abstract: "Muster's edge agent and checker.",
        subcommands: [Install.self, Join.self, Run.self, Status.self]
    )

    struct Install: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Install an agent or checker package and join the poller it names.")
        @Option(help: "The package tar.gz downloaded from Core") var package: String
        @Option(help: "State directory") var dir: String = "/var/lib/muster-agent"
        @Option(help: "host:port of the poller (default: the package's)") var poller: String?

        func run() async throws {
            let id = try await AgentInstall.install(archive: package, into: dir, poller: poller)
            print("joined as \(id); identity in \(dir)/identity; next: muster-agent run --dir \(dir)")
        }
    }

    struct Join: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Join a poller with a join token (the one-line join command).")
        @Option(help: "host:port of the poller") var poller: String
        @Option(
            name: .customLong("poller-id"), help: "The poller's name (or full SPIFFE ID); no other server is accepted")
        var pollerID: String
        @Option(name: .customLong("token-file"), help: "File holding the join token, or - for standard input")
        var tokenFile: String?
        @Option(help: "The join token (visible to other users in the process list; prefer --token-file)") var token:
            String?
        @Option(name: .customLong("ca-pin"), help: "sha256:HEX pin of the trust domain's root CA") var caPin: String
        @Option(help: "agent or checker (the package decides; a mismatch is reported)") var type: String?
        @Option(help: "State directory") var dir: String = "/var/lib/muster-agent"

        func validate() throws {
            if let type, !["agent", "checker"].contains(type) {
                throw ValidationError("--type must be agent or checker")
            }
            guard (tokenFile == nil) != (token == nil) else {
                throw ValidationError("give the join token with exactly one of --token-file and --token")
            }
        }

        func run() async throws {
            let state = AgentState(directory: dir)
            if state.hasIdentity {
                throw AgentError("\(dir) already holds an identity; use another --dir or remove \(dir)/identity")
            }
            let secret = try token ?? Self.readToken(from: tokenFile ?? "-")
            let id = try await AgentOnboarding.join(
                .init(poller: poller, pollerID: pollerID, token: secret, caPin: caPin, expectedType: type),
                state: state)
            print("joined as \(id); identity in \(dir)/identity; next: muster-agent run --dir \(dir)")
        }

        /// The token from a file or standard input: its first line, trimmed; an empty one is refused.
        static func readToken(from path: String) throws -> String {
            let data =
                path == "-"
                ? FileHandle.standardInput.readDataToEndOfFile() : FileManager.default.contents(atPath: path)
            guard let data else { throw AgentError("--token-file: cannot read \(path)") }
            let token =
                String(decoding: data.prefix(4096), as: UTF8.self).split(whereSeparator: \.isNewline).first
                .map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
            guard !token.isEmpty else {
                throw AgentError("--token-file: \(path == "-" ? "standard input" : path) holds no token")
            }
            return token
        }
    }

    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Keep the SVID renewed through the poller (at half-life).")
        @Option(help: "State directory") var dir: String = "/var/lib/muster-agent"
        @Option(name: .customLong("workload-socket"), help: "SPIFFE Workload API socket (not served by this build)")
        var workloadSocket: String?

        func validate() throws {
            if workloadSocket != nil {
                throw ValidationError("--workload-socket: the SPIFFE Workload API is not served by this build")
            }
        }

        func run() async throws {
            let logger = Runtime.bootstrapLogging(label: "muster.agent")
            let runner = AgentRunner(state: AgentState(directory: dir), logger: logger)
            // One service now; the Workload API server joins it under the same group.
            try await Runtime.run([.init(LoopService { try await runner.run() }, name: "renewal")], logger: logger)
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

await Runtime.main(AgentCommand.self, program: "muster-agent") { command in
    switch command {
    case let install as AgentCommand.Install: try await install.run()
    case let join as AgentCommand.Join: try await join.run()
    case let run as AgentCommand.Run: try await run.run()
    case let status as AgentCommand.Status: try await status.run()
    default:
        var command = command
        try command.run()
    }
}
