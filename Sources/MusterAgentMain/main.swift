import ArgumentParser
import Foundation
import Logging
import MusterAgent
import MusterEdge
import MusterGRPC
import MusterIdentity
import MusterRuntime

/// `muster-agent`: an agent or checker on an edge segment. Gets its SVID from its poller (never from Core)
/// with a package or a join command, and keeps it renewed.
struct AgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "muster-agent", abstract: "Muster's edge agent and checker.",
        subcommands: [Install.self, Join.self, Enroll.self, Run.self, Status.self]
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

    struct Enroll: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Enroll without a token: ask the poller, wait for an operator's approval, receive the identity.",
            discussion:
                "Exit status: 0 approved (identity written as by join), 1 denied, 5 expired, 2 usage, 130/143 "
                + "interrupted (SIGINT/SIGTERM). An interrupted enroll resumes the same request when run again with "
                + "the same --dir.")
        @Option(help: "host:port of the poller") var poller: String
        @Option(name: .customLong("ca-pin"), help: "sha256:HEX pin of the trust domain's root CA") var caPin: String
        @Option(help: "agent or checker") var type: String = "agent"
        @Option(help: "The name to ask for (the operator may change it; default: from the hostname)") var name: String?
        @Option(help: "Longest wait for a decision: seconds, or with s, m or h (at most 24h)") var timeout: String =
            "24h"
        @Option(help: "State directory") var dir: String = "/var/lib/muster-agent"
        @Option(name: .customLong("machine-id-file"), help: "Where the machine ID is read from")
        var machineIDFile: String = "/etc/machine-id"

        func validate() throws {
            guard ["agent", "checker"].contains(type) else { throw ValidationError("--type must be agent or checker") }
            if let name { do { try MusterIDs.checkName(name) } catch { throw ValidationError("--name: \(error)") } }
            guard AgentEnrollment.parseDuration(timeout) != nil else {
                throw ValidationError("--timeout must be 1s to 24h (seconds, or a number with s, m or h)")
            }
        }

        func run() async throws {
            let state = AgentState(directory: dir)
            if state.hasIdentity {
                throw AgentError("\(dir) already holds an identity; use another --dir or remove \(dir)/identity")
            }
            let display = ProgressLine()
            let options = AgentEnrollment.Options(
                poller: poller, caPin: caPin, componentType: type, name: name,
                timeout: AgentEnrollment.parseDuration(timeout)!, machineIDFile: machineIDFile)
            let id: SPIFFEID
            do {
                id = try await Runtime.interruptible(
                    message: "run the same command with --dir \(dir) to resume the request"
                ) {
                    try await AgentEnrollment.enroll(options, state: state, progress: { display.show($0) })
                }
            } catch {
                display.end()
                throw error
            }
            display.end()
            print("enrolled as \(id); identity in \(dir)/identity; next: muster-agent run --dir \(dir)")
        }
    }

    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Keep the SVID renewed through the poller and serve it to local workloads (SPIFFE Workload API).")
        @Option(help: "State directory") var dir: String = "/var/lib/muster-agent"
        @Option(name: .customLong("workload-socket"), help: "SPIFFE Workload API socket (its directory is made 0755)")
        var workloadSocket: String = "/run/muster-agent/workload.sock"
        @Flag(name: .customLong("no-workload-api"), help: "Only keep the SVID renewed; serve no Workload API")
        var noWorkloadAPI = false

        func validate() throws {
            guard noWorkloadAPI || workloadSocket.hasPrefix("/") else {
                throw ValidationError("--workload-socket must be an absolute path")
            }
        }

        func run() async throws {
            let logger = Runtime.bootstrapLogging(label: "muster.agent")
            let state = AgentState(directory: dir)
            let identity = noWorkloadAPI ? nil : WorkloadIdentity()
            let runner = AgentRunner(state: state, logger: logger, workload: identity)
            var services: [Runtime.Part] = [
                .init(LoopService { try await runner.run() }, name: "renewal"),
                .init(LoopService { await runner.watch() }, name: "identity-watch", mayEnd: true),
            ]
            if let identity {
                let server = try WorkloadAPIServer.start(socket: workloadSocket, identity: identity, logger: logger)
                let socket = workloadSocket
                services += [
                    .init(
                        GRPCServerService(server: server, health: HealthService(), services: [], grace: .seconds(1)),
                        name: "workload-api"),
                    .init(
                        LoopService {
                            await WorkloadStatus.keepWritten(socket: socket, identity: identity, state: state)
                        },
                        name: "status-file"),
                ]
            }
            try await Runtime.run(services, logger: logger)
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
    case let enroll as AgentCommand.Enroll: try await enroll.run()
    case let run as AgentCommand.Run: try await run.run()
    case let status as AgentCommand.Status: try await status.run()
    default:
        var command = command
        try command.run()
    }
}
