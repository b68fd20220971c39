import CGRPCCore
import Foundation

/// gRPC core channel arguments built from Swift values; the C strings live only inside `withCoreArgs`.
struct ChannelArguments {
    enum Value {
        case integer(Int)
        case string(String)
    }

    let entries: [(String, Value)]

    init(_ entries: [(String, Value)]) { self.entries = entries }

    func withCoreArgs<R>(_ body: (UnsafePointer<grpc_channel_args>) -> R) -> R {
        var owned: [UnsafeMutablePointer<CChar>] = []
        defer { for pointer in owned { free(pointer) } }
        var args: [grpc_arg] = entries.map { key, value in
            var arg = grpc_arg()
            let keyCopy = strdup(key)!
            owned.append(keyCopy)
            arg.key = keyCopy
            switch value {
            case .integer(let number):
                arg.type = GRPC_ARG_INTEGER
                arg.value.integer = Int32(clamping: number)
            case .string(let text):
                let copy = strdup(text)!
                owned.append(copy)
                arg.type = GRPC_ARG_STRING
                arg.value.string = copy
            }
            return arg
        }
        return args.withUnsafeMutableBufferPointer { buffer in
            var channelArgs = grpc_channel_args(num_args: buffer.count, args: buffer.baseAddress)
            return body(&channelArgs)
        }
    }
}

extension Duration {
    /// Whole milliseconds, for gRPC core's `*_ms` arguments.
    var milliseconds: Int {
        let (seconds, attoseconds) = components
        return Int(seconds) * 1000 + Int(attoseconds / 1_000_000_000_000_000)
    }
}
