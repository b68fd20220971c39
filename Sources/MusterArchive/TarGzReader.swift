import CArchive
import Foundation

/// Limits a package archive must keep; anything beyond is refused before a byte is written.
public struct ArchiveLimits: Sendable {
    public var maxEntries = 32
    public var maxEntryBytes = 1 << 20
    public var maxTotalBytes = 4 << 20
    public var maxArchiveBytes = 4 << 20

    public init() {}
}

extension TarGz {
    /// Reads a package archive into memory, refusing the whole archive on the first entry that is not a plain
    /// file with a plain name (no directories, `..`, absolute paths, links, devices or FIFOs), on a duplicate
    /// name, and on any size or count past `limits` — decompressed sizes are counted as they stream, so a
    /// gzip bomb stops at the limit.
    public static func read(_ archiveBytes: [UInt8], limits: ArchiveLimits = ArchiveLimits()) throws -> [ArchiveFile] {
        guard archiveBytes.count <= limits.maxArchiveBytes else {
            throw ArchiveError(
                code: .refused,
                message: "archive is \(archiveBytes.count) bytes; a package is at most \(limits.maxArchiveBytes)")
        }
        guard let archive = archive_read_new() else {
            throw ArchiveError(code: .read, message: "libarchive: out of memory")
        }
        defer { archive_read_free(archive) }
        archive_read_support_filter_gzip(archive)
        archive_read_support_format_tar(archive)
        var files: [ArchiveFile] = []
        var total = 0
        try archiveBytes.withUnsafeBytes { buffer in
            guard archive_read_open_memory(archive, buffer.baseAddress, buffer.count) == ARCHIVE_OK else {
                throw ArchiveError(code: .read, message: "not a gzip-compressed tar archive: \(errorText(archive))")
            }
            var entry: OpaquePointer?
            while true {
                let status = archive_read_next_header(archive, &entry)
                if status == ARCHIVE_EOF { break }
                guard status == ARCHIVE_OK || status == ARCHIVE_WARN, let entry else {
                    throw ArchiveError(code: .read, message: "damaged archive: \(errorText(archive))")
                }
                let name = archive_entry_pathname(entry).map { String(cString: $0) } ?? ""
                try checkName(name)
                guard archive_entry_filetype(entry) == 0o100000, archive_entry_hardlink(entry) == nil,
                    archive_entry_symlink(entry) == nil
                else {
                    throw ArchiveError(
                        code: .refused,
                        message:
                            "entry '\(name)' is not a regular file (links, directories, devices and FIFOs are refused)")
                }
                guard !files.contains(where: { $0.name == name }) else {
                    throw ArchiveError(code: .refused, message: "entry '\(name)' appears twice")
                }
                guard files.count < limits.maxEntries else {
                    throw ArchiveError(code: .refused, message: "more than \(limits.maxEntries) entries")
                }
                var contents: [UInt8] = []
                var chunk = [UInt8](repeating: 0, count: 16 * 1024)
                while true {
                    let count = chunk.withUnsafeMutableBytes { archive_read_data(archive, $0.baseAddress, $0.count) }
                    if count == 0 { break }
                    guard count > 0 else {
                        throw ArchiveError(code: .read, message: "damaged entry '\(name)': \(errorText(archive))")
                    }
                    contents.append(contentsOf: chunk[0..<count])
                    total += count
                    guard contents.count <= limits.maxEntryBytes else {
                        throw ArchiveError(
                            code: .refused, message: "entry '\(name)' is larger than \(limits.maxEntryBytes) bytes")
                    }
                    guard total <= limits.maxTotalBytes else {
                        throw ArchiveError(
                            code: .refused, message: "archive expands past \(limits.maxTotalBytes) bytes")
                    }
                }
                files.append(ArchiveFile(name: name, contents: contents, mode: UInt32(archive_entry_perm(entry))))
            }
        }
        return files
    }

    /// A package holds flat names only: no separators, no `.`/`..`, no control characters, 1–128 bytes.
    static func checkName(_ name: String) throws {
        guard !name.isEmpty, name.utf8.count <= 128 else {
            throw ArchiveError(code: .refused, message: "entry name is empty or too long")
        }
        guard !name.hasPrefix("/") else {
            throw ArchiveError(code: .refused, message: "entry '\(name)' is an absolute path")
        }
        guard !name.split(separator: "/", omittingEmptySubsequences: false).contains(where: { $0 == ".." }) else {
            throw ArchiveError(code: .refused, message: "entry '\(name)' climbs out with '..'")
        }
        guard !name.contains("/"), name != ".", !name.utf8.contains(where: { $0 < 0x20 || $0 == 0x7f }) else {
            throw ArchiveError(code: .refused, message: "entry '\(name)' is not a plain file name")
        }
    }

    static func errorText(_ archive: OpaquePointer) -> String {
        archive_error_string(archive).map { String(cString: $0) } ?? "unknown error"
    }
}
