import Foundation
import MusterRuntime
import Testing

#if os(Linux)
    import Glibc

    /// Free memory handed back to the system (what the poller's `FreeMemoryReturn` does every 30 s).
    @Suite("free memory returned")
    struct MemoryReturnTests {
        static func residentBytes() throws -> Int {
            let fields = try String(contentsOfFile: "/proc/self/statm", encoding: .utf8).split(separator: " ")
            return (Int(fields[1]) ?? 0) * Int(sysconf(Int32(_SC_PAGESIZE)))
        }

        @Test("60 MiB freed between live blocks stays resident until returned; nothing below the threshold")
        func freedMemoryLeaves() throws {
            // 2,048 blocks of 32 KiB (under glibc's mmap threshold, so they come from the heap), every page touched;
            // every 16th stays allocated so the freed space is between live blocks, where glibc keeps it by itself.
            let blocks = (0..<2048).map { _ -> UnsafeMutableRawPointer in
                let block = malloc(32 * 1024)!
                memset(block, 1, 32 * 1024)
                return block
            }
            defer { for (index, block) in blocks.enumerated() where index % 16 == 0 { free(block) } }
            for (index, block) in blocks.enumerated() where index % 16 != 0 { free(block) }
            #expect(Runtime.freeHeldBytes >= 56 << 20)
            #expect(!Runtime.returnFreeMemory(above: Int.max))

            let before = try Self.residentBytes()
            #expect(Runtime.returnFreeMemory(above: 1 << 20))
            let after = try Self.residentBytes()
            #expect(before - after >= 32 << 20, "resident before \(before >> 20) MiB, after \(after >> 20) MiB")
        }
    }
#endif
