import ArgumentParser
import Foundation
import MusterEdge

/// `muster-poller`: the edge poller. This build has `install`; `run` and `status` come with the relay.
struct PollerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "muster-poller", abstract: "Muster's edge poller.", subcommands: [Install.self]
    )

    struct Install: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Install a poller package (checked entry by entry, moved into place atomically).")
        @Option(help: "The package tar.gz downloaded from Core") var package: String
        @Option(help: "State directory (default /var/lib/muster-poller)") var dir: String = "/var/lib/muster-poller"

        func run() throws {
            let manifest = try PackageInstaller.install(archive: package, into: dir, expecting: ["poller"])
            print("installed \(manifest.spiffeID) into \(dir)/package; next: muster-poller run --dir \(dir)")
        }
    }
}

do {
    var command = try PollerCommand.parseAsRoot()
    try command.run()
} catch let error as InstallError {
    FileHandle.standardError.write(Data("muster-poller: \(error.message)\n".utf8))
    exit(1)
} catch {
    let code = PollerCommand.exitCode(for: error)
    if code == .success { PollerCommand.exit(withError: error) }
    let message = PollerCommand.message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
    FileHandle.standardError.write(Data("muster-poller: \(message)\n".utf8))
    exit(code == .validationFailure ? 2 : 1)
}
