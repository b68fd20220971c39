import UnixSignals

/// The error a command ends with when SIGINT or SIGTERM stopped it (exit 130 for SIGINT, 143 for SIGTERM, as
/// shells report a process killed by the signal).
public struct Interrupted: ExitCodeError {
    public let signal: UnixSignal
    public let message: String

    public var exitCode: Int32 { signal == .sigint ? 130 : 143 }
}

extension Runtime {
    /// Runs `body` (a command that waits, such as an enrollment) until it ends or SIGINT/SIGTERM arrives; then
    /// cancels it and throws `Interrupted` with `message`. The handlers are installed whatever the process
    /// inherited, so a command started with SIGINT ignored (a background job of a script) still stops on it.
    public static func interruptible<Value: Sendable>(
        message: String, _ body: @escaping @Sendable () async throws -> Value
    ) async throws -> Value {
        let signals = await UnixSignalsSequence(trapping: .sigint, .sigterm)
        return try await withThrowingTaskGroup(of: Value?.self) { group in
            group.addTask { try await body() }
            group.addTask {
                for await signal in signals {
                    throw Interrupted(signal: signal, message: "interrupted (\(signal)); \(message)")
                }
                return nil
            }
            defer { group.cancelAll() }
            while let next = try await group.next() {
                if let value = next { return value }
            }
            throw CancellationError()
        }
    }
}
