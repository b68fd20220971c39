import Foundation

/// Writes files atomically with exact permissions, whatever the umask: a crash leaves the old file or the new one, never a mix.
public enum SecureFile {
    /// Why a write failed, with the path and the system's reason.
    public struct WriteError: Error, CustomStringConvertible {
        public let path: String
        public let reason: String
        public var description: String { "cannot write \(path): \(reason)" }
    }

    /// Creates `directory` (and parents) with `mode` if missing, and sets `mode` on it either way.
    public static func makeDirectory(_ directory: String, mode: mode_t = 0o700) throws(WriteError) {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory) == false {
            do {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            } catch {
                throw WriteError(path: directory, reason: "\(error.localizedDescription)")
            }
        } else if isDirectory.boolValue == false {
            throw WriteError(path: directory, reason: "exists and is not a directory")
        }
        guard chmod(directory, mode) == 0 else { throw WriteError(path: directory, reason: errnoText()) }
    }

    /// Writes `bytes` to `path` with `mode` via a temporary file, fsync and rename; the directory is created 0700 if missing.
    public static func write(_ bytes: some Collection<UInt8>, to path: String, mode: mode_t = 0o600) throws(WriteError)
    {
        try write(bytes, to: path, mode: mode, beforeRename: nil)
    }

    /// `beforeRename` lets tests fail the write at its most delicate point.
    static func write(
        _ bytes: some Collection<UInt8>, to path: String, mode: mode_t, beforeRename: (() throws -> Void)?
    ) throws(WriteError) {
        let directory =
            (path as NSString).deletingLastPathComponent.isEmpty ? "." : (path as NSString).deletingLastPathComponent
        if FileManager.default.fileExists(atPath: directory) == false { try makeDirectory(directory) }
        let temporary =
            "\(directory)/.\((path as NSString).lastPathComponent).\(getpid()).\(UInt32.random(in: 0...UInt32.max)).tmp"
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard descriptor >= 0 else { throw WriteError(path: path, reason: errnoText()) }
        var failure: String?
        // open() applies the umask; fchmod sets exactly the mode asked for.
        if fchmod(descriptor, mode) != 0 { failure = errnoText() }
        let data = Array(bytes)
        var written = 0
        while failure == nil && written < data.count {
            let count = data.withUnsafeBytes {
                Foundation.write(descriptor, $0.baseAddress! + written, data.count - written)
            }
            if count < 0 {
                if errno == EINTR { continue }
                failure = errnoText()
            } else {
                written += count
            }
        }
        if failure == nil && fsync(descriptor) != 0 { failure = errnoText() }
        close(descriptor)
        if failure == nil, let beforeRename {
            do { try beforeRename() } catch { failure = "interrupted before rename" }
        }
        if failure == nil && rename(temporary, path) != 0 { failure = errnoText() }
        if let failure {
            unlink(temporary)
            throw WriteError(path: path, reason: failure)
        }
        let directoryDescriptor = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if directoryDescriptor >= 0 {
            fsync(directoryDescriptor)
            close(directoryDescriptor)
        }
    }

    /// Writes `files` into a fresh hidden sibling of `target` (0700) and renames it to `target` in one step, so
    /// readers see every file or none. Refuses an existing `target`; removes the staging directory on failure.
    /// With `replacing`, an existing `target` is first renamed to `target.previous` and removed once the new one
    /// is in place; `restorePrevious(of:)` undoes a crash between the two renames.
    public static func writeDirectory(
        _ files: [(name: String, bytes: [UInt8], mode: mode_t)], to target: String, replacing: Bool = false
    ) throws(WriteError) {
        let exists = FileManager.default.fileExists(atPath: target)
        guard !exists || replacing else { throw WriteError(path: target, reason: "already exists") }
        let parent =
            (target as NSString).deletingLastPathComponent.isEmpty
            ? "." : (target as NSString).deletingLastPathComponent
        let staging = "\(parent)/.staging-\((target as NSString).lastPathComponent)-\(UUID().uuidString.lowercased())"
        do {
            try makeDirectory(staging)
            for file in files { try write(file.bytes, to: staging + "/" + file.name, mode: file.mode) }
            if exists {
                try? FileManager.default.removeItem(atPath: target + ".previous")
                guard rename(target, target + ".previous") == 0 else {
                    throw WriteError(path: target, reason: errnoText())
                }
            }
            guard rename(staging, target) == 0 else {
                let reason = errnoText()
                if exists { _ = rename(target + ".previous", target) }
                throw WriteError(path: target, reason: reason)
            }
            if exists { try? FileManager.default.removeItem(atPath: target + ".previous") }
        } catch let error as WriteError {
            try? FileManager.default.removeItem(atPath: staging)
            throw error
        } catch {
            try? FileManager.default.removeItem(atPath: staging)
            throw WriteError(path: target, reason: "\(error)")
        }
        let descriptor = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if descriptor >= 0 {
            fsync(descriptor)
            close(descriptor)
        }
    }

    /// Puts back `target.previous` when a replacement stopped between its two renames.
    public static func restorePrevious(of target: String) {
        if !FileManager.default.fileExists(atPath: target), FileManager.default.fileExists(atPath: target + ".previous")
        {
            _ = rename(target + ".previous", target)
        }
    }

    /// Writes UTF-8 `text`; see `write(_:to:mode:)`.
    public static func write(_ text: String, to path: String, mode: mode_t = 0o600) throws(WriteError) {
        try write(Array(text.utf8), to: path, mode: mode)
    }

    private static func errnoText() -> String { String(cString: strerror(errno)) }
}
