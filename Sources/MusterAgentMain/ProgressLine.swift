import Foundation
import MusterAgent
import MusterConcurrency
import MusterIdentity

#if canImport(Glibc)
    import Glibc
#endif

/// The enrollment's progress on standard error: what to read to the operator once, then one line kept up to
/// date on a terminal (elapsed time, state, what to ask), or a line per change when not on a terminal.
final class ProgressLine: Sendable {
    private let onTerminal = isatty(2) == 1
    private let last = LockedValue<(text: String, at: Date)?>(nil)

    func show(_ progress: AgentEnrollment.Progress) {
        switch progress {
        case .submitted(let id, let fingerprint, let poller):
            write(
                "enrollment request \(id) sent to poller \(poller)\n"
                    + "  key fingerprint: \(fingerprint)\n"
                    + "  short form:      \(KeyFingerprint.short(fingerprint))\n"
                    + "  read both to the operator; they must match what Core shows before approving\n")
        case .resumed(let id, let fingerprint):
            write(
                "resuming enrollment request \(id)\n  key fingerprint: \(fingerprint) (\(KeyFingerprint.short(fingerprint)))\n"
            )
        case .waiting(let id, let fingerprint, let state, let elapsed):
            let line =
                "waiting \(AgentEnrollment.format(elapsed)) · \(state) · ask the operator to approve request "
                + "\(id.prefix(8)) (key \(KeyFingerprint.short(fingerprint)))"
            update(line, key: state)
        case .retrying(let message):
            update(message, key: message)
        }
    }

    func end() { if onTerminal, last.withLock({ $0 }) != nil { write("\n") } }

    /// On a terminal the line is redrawn in place; elsewhere it is printed when it changes (by `key`) or every
    /// ten minutes, so a log is not flooded.
    private func update(_ line: String, key: String) {
        if onTerminal {
            last.withLock { $0 = (key, Date()) }
            write("\r\u{1B}[2K" + line)
            return
        }
        let due = last.withLock { last -> Bool in
            let due = last.map { $0.text != key || Date().timeIntervalSince($0.at) >= 600 } ?? true
            if due { last = (key, Date()) }
            return due
        }
        if due { write(line + "\n") }
    }

    private func write(_ text: String) { FileHandle.standardError.write(Data(text.utf8)) }
}
