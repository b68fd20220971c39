import CArchive
import Foundation
import MusterErrors

/// One regular file to put in a package archive.
public struct ArchiveFile: Sendable, Equatable {
    public let name: String
    public let contents: [UInt8]
    /// Permission bits, e.g. 0o600 for a secret.
    public let mode: UInt32

    public init(name: String, contents: [UInt8], mode: UInt32 = 0o644) {
        self.name = name
        self.contents = contents
        self.mode = mode
    }

    public init(name: String, text: String, mode: UInt32 = 0o644) {
        self.init(name: name, contents: Array(text.utf8), mode: mode)
    }
}

/// An archive that libarchive could not write or read.
public typealias ArchiveError = Failure<ArchiveErrorCode>

/// What libarchive could not do.
public struct ArchiveErrorCode: NamedErrorCode {
    public let name: String
    public static let write = ArchiveErrorCode(name: "archive_write")
    public static let read = ArchiveErrorCode(name: "archive_read")
    public static let refused = ArchiveErrorCode(name: "archive_refused")
}

/// Writes gzip-compressed POSIX tar archives in memory through libarchive.
public enum TarGz {
    /// The archive bytes of `files`, in order, owned by root:root, stamped `modified`.
    public static func write(_ files: [ArchiveFile], modified: Date = Date()) throws -> [UInt8] {
        let sink = ByteSink()
        guard let archive = archive_write_new() else {
            throw ArchiveError(code: .write, message: "libarchive: out of memory")
        }
        defer { archive_write_free(archive) }
        try check(archive, archive_write_add_filter_gzip(archive))
        try check(archive, archive_write_set_format_pax_restricted(archive))
        let context = Unmanaged.passUnretained(sink).toOpaque()
        try check(
            archive,
            archive_write_open(
                archive, context, nil,
                { _, context, buffer, length in
                    guard let context, let buffer else { return -1 }
                    let sink = Unmanaged<ByteSink>.fromOpaque(context).takeUnretainedValue()
                    sink.bytes.append(contentsOf: UnsafeRawBufferPointer(start: buffer, count: length))
                    return la_ssize_t(length)
                }, nil))
        let seconds = time_t(modified.timeIntervalSince1970)
        for file in files {
            guard let entry = archive_entry_new() else {
                throw ArchiveError(code: .write, message: "libarchive: out of memory")
            }
            defer { archive_entry_free(entry) }
            archive_entry_set_pathname(entry, file.name)
            archive_entry_set_size(entry, la_int64_t(file.contents.count))
            archive_entry_set_filetype(entry, 0o100000)
            archive_entry_set_perm(entry, mode_t(file.mode))
            archive_entry_set_uid(entry, 0)
            archive_entry_set_gid(entry, 0)
            archive_entry_set_mtime(entry, seconds, 0)
            try check(archive, archive_write_header(archive, entry))
            let written = file.contents.withUnsafeBytes { archive_write_data(archive, $0.baseAddress, $0.count) }
            guard written == file.contents.count else {
                throw ArchiveError(
                    code: .write, message: "libarchive wrote \(written) of \(file.contents.count) bytes of \(file.name)"
                )
            }
        }
        try check(archive, archive_write_close(archive))
        return sink.bytes
    }

    static func check(_ archive: OpaquePointer, _ status: Int32) throws {
        guard status == ARCHIVE_OK || status == ARCHIVE_WARN else {
            throw ArchiveError(code: .write, message: "libarchive: \(errorText(archive))")
        }
    }
}

/// Collects libarchive's output; only touched from the thread running `TarGz.write`.
private final class ByteSink {
    var bytes: [UInt8] = []
}
