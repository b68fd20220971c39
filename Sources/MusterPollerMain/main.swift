import ArgumentParser
import Foundation
import Logging
import MusterEdge
import MusterGRPC
import MusterIdentity
import MusterPoller
import MusterRuntime

/// `muster-poller`: the edge poller. Installs its package, attests to Core once, then relays: it caches the
/// agent and checker packages Core streams to it and onboards those agents on its own segment.
struct PollerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "muster-poller", abstract: "Muster's edge poller.",
        subcommands: [Install.self, Run.self, Status.self]
    )

    struct Install: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Install a poller package (checked entry by entry, moved into place atomically).")
        @Option(help: "The package tar.gz downloaded from Core") var package: String
        @Option(help: "State directory (default /var/lib/muster-poller)") var dir: String = "/var/lib/muster-poller"

        func run() throws {
            let manifest = try PackageInstaller.install(archive: package, into: dir, expecting: ["poller"])
            print("installed \(manifest.spiffeID) into \(dir)/package; next: muster-poller run --dir \(dir)")
        }
    }

    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Attest to Core once (the token is single-use), then relay: cache agent packages, onboard agents, report to Core."
        )
        @Option(help: "State directory") var dir: String = "/var/lib/muster-poller"
        @Option(help: "Address to serve agents on") var listen: String = "0.0.0.0:50052"
        @Option(help: "host:port agents dial (default: --listen, 0.0.0.0 → 127.0.0.1)") var advertise: String?
        @Option(
            name: .customLong("agent-svid-ttl"), help: "Lifetime in seconds of the SVIDs issued to agents (60–86400)")
        var agentSVIDTTL: Int = 3600
        @Option(
            name: .customLong("enrollment-interval"),
            help: "Seconds between self-enrollment requests from one source address (1–86400)")
        var enrollmentInterval: Int = 60
        @Option(
            name: .customLong("max-pending-enrollments"),
            help: "Most self-enrollment requests waiting for an operator at once (1–10000)")
        var maxPendingEnrollments: Int = 100

        func validate() throws {
            guard (60...86_400).contains(agentSVIDTTL) else {
                throw ValidationError("--agent-svid-ttl must be between 60 and 86400 seconds")
            }
            guard (1...86_400).contains(enrollmentInterval) else {
                throw ValidationError("--enrollment-interval must be between 1 and 86400 seconds")
            }
            guard (1...10_000).contains(maxPendingEnrollments) else {
                throw ValidationError("--max-pending-enrollments must be between 1 and 10000")
            }
        }

        func run() async throws {
            let logger = Runtime.bootstrapLogging(label: "muster.poller")
            let state = PollerState(directory: dir)
            let advertised = advertise ?? listen.replacingOccurrences(of: "0.0.0.0:", with: "127.0.0.1:")
            state.recoverInterruptedRenewal()
            if !state.isAttested {
                let id = try await PollerAttestation.attest(state: state, advertise: advertised)
                logger.notice("attested to Core", metadata: ["spiffe_id": "\(id)"])
            }
            let poller = try await PollerServer.start(
                state: state, listen: listen, agentSVIDTTL: TimeInterval(agentSVIDTTL),
                enrollment: EnrollmentSettings(
                    interval: Int64(enrollmentInterval), maxPending: maxPendingEnrollments),
                logger: logger)
            logger.notice("serving agents", metadata: ["port": "\(poller.server.port)", "advertise": "\(advertised)"])
            try await poller.run(logger: logger)
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "What the poller holds and whether Core is reachable.")
        @Option(help: "State directory") var dir: String = "/var/lib/muster-poller"

        func run() async throws {
            let status = await PollerStatus.read(state: PollerState(directory: dir))
            for line in status.lines { print(line) }
        }
    }
}

Runtime.keepFewMallocArenas()
await Runtime.main(PollerCommand.self, program: "muster-poller") { command in
    switch command {
    case let run as PollerCommand.Run: try await run.run()
    case let status as PollerCommand.Status: try await status.run()
    default:
        var command = command
        try command.run()
    }
}
