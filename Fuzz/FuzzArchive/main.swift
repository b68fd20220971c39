import MusterArchive
import MusterEdge

/// libFuzzer entry: a package archive as an installer receives it, read and checked whole in memory.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzArchive(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let bytes = Array(UnsafeRawBufferPointer(start: start, count: count))
    if let files = try? TarGz.read(bytes) {
        // What the reader accepts is what the writer could have written: safe names, no duplicates.
        precondition(Set(files.map(\.name)).count == files.count, "duplicate entry accepted")
        precondition(
            files.allSatisfy { !$0.name.contains("/") && $0.name != ".." && $0.name != "." },
            "unsafe entry name accepted")
    }
    _ = try? PackageInstaller.inspect(bytes, expecting: ["poller", "agent", "checker"])
    return 0
}
