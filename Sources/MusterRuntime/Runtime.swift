import ArgumentParser
import Foundation
import Logging
@_exported import MusterErrors
import ServiceLifecycle

/// What every Muster executable shares: one logging bootstrap, one exit-code mapping, and one way to run its
/// long-lived parts — as `Service`s under a `ServiceGroup` with graceful shutdown on SIGTERM/SIGINT.
public enum Runtime {
    /// Logs to standard error at `MUSTER_LOG_LEVEL` (default `info`); call once, before the first logger.
    public static func bootstrapLogging(label: String) -> Logger {
        let level =
            ProcessInfo.processInfo.environment["MUSTER_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        return Logger(label: label)
    }

    /// Runs `services` in order until they end or SIGTERM/SIGINT asks them to stop (in reverse order, each given
    /// `grace` before it is cancelled). Services marked `mayEnd` may return early without stopping the rest.
    public static func run(_ services: [Part], logger: Logger, grace: Duration = .seconds(10)) async throws {
        var configuration = ServiceGroupConfiguration(
            services: services.map {
                .init(
                    service: $0.service, successTerminationBehavior: $0.mayEnd ? .ignore : .gracefullyShutdownGroup,
                    serviceName: $0.name)
            },
            gracefulShutdownSignals: [.sigterm, .sigint], cancellationSignals: [], logger: logger
        )
        configuration.maximumGracefulShutdownDuration = grace
        try await ServiceGroup(configuration: configuration).run()
    }

    /// One service in `run`, with its name for the logs.
    public struct Part: Sendable {
        public let service: any Service
        public let name: String
        public let mayEnd: Bool

        public init(_ service: any Service, name: String, mayEnd: Bool = false) {
            self.service = service
            self.name = name
            self.mayEnd = mayEnd
        }
    }

    /// Parses the command line, runs the command and exits: 0 ok, 1 error, 2 usage, or the code an error names
    /// (`ExitCodeError`, ArgumentParser's `ExitCode`); every failure is one line on stderr, `program: message`.
    public static func main<Command: ParsableCommand>(
        _ command: Command.Type, program: String,
        run: (ParsableCommand) async throws -> Void
    ) async -> Never {
        do {
            let parsed = try Command.parseAsRoot()
            try await run(parsed)
            exit(0)
        } catch {
            let code = exitCode(for: error, command)
            if code == nil { Command.exit(withError: error) }
            if let message = message(for: error, command) {
                FileHandle.standardError.write(Data("\(program): \(message)\n".utf8))
            }
            exit(code ?? 1)
        }
    }

    /// The process's exit status for `error`; nil when ArgumentParser prints and exits itself (help, version).
    static func exitCode<Command: ParsableCommand>(for error: any Error, _ command: Command.Type) -> Int32? {
        if let coded = error as? any ExitCodeError { return coded.exitCode }
        if let exit = error as? ExitCode { return exit.rawValue }
        if error is CleanExit { return nil }
        let code = Command.exitCode(for: error)
        if code == .success { return nil }
        return code == .validationFailure ? 2 : 1
    }

    /// The one line printed for `error`, nil for an `ExitCode` (the command printed what it had to say).
    static func message<Command: ParsableCommand>(for error: any Error, _ command: Command.Type) -> String? {
        if error is ExitCode { return nil }
        if let coded = error as? any ExitCodeError { return coded.message }
        let text = Command.message(for: error)
        return text.split(separator: "\n").first.map(String.init) ?? "\(error)"
    }
}

/// A loop (a package stream, an outbox, a renewal) run as a `Service`: it is cancelled when the group shuts
/// down gracefully, and its cancellation is a clean end.
public struct LoopService: Service {
    let body: @Sendable () async throws -> Void

    public init(_ body: @escaping @Sendable () async throws -> Void) { self.body = body }

    public func run() async throws {
        do {
            try await cancelWhenGracefulShutdown { try await body() }
        } catch is CancellationError {
            return
        }
    }
}
