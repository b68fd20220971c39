import ArgumentParser
import Foundation
import Logging
import MusterEcho
import MusterGRPC
import MusterIdentity

/// A demo of the gRPC bridge: a server with Health and Echo over SPIFFE mTLS, and a client to call any such server.
@main
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "muster-grpc-demo",
        abstract: "Serve or call Health and Echo over gRPC with SPIFFE mTLS, through Muster's bridge.",
        subcommands: [Serve.self, Call.self]
    )
}

/// Files a demo data directory holds.
struct DemoFiles {
    let root: URL
    var bundle: URL { root.appending(path: "bundle.pem") }
    var caDirectory: URL { root.appending(path: "ca") }
    var serverCertificate: URL { root.appending(path: "server/svid.pem") }
    var serverKey: URL { root.appending(path: "server/svid.key") }
    var clientCertificate: URL { root.appending(path: "client/svid.pem") }
    var clientKey: URL { root.appending(path: "client/svid.key") }

    static func write(_ text: String, to url: URL, secret: Bool = false) throws {
        try SecureFile.makeDirectory(url.deletingLastPathComponent().path)
        try SecureFile.write(text, to: url.path, mode: secret ? 0o600 : 0o644)
    }
}
