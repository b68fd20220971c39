import Foundation
import MusterEdge
import MusterIdentity

/// `muster-agent install`: the package is checked and installed like a poller's, then the agent joins the
/// poller the package names (or `--poller`), trusting it through the package's CA pin and expecting the
/// package's exact SPIFFE ID. The token file is removed once the join succeeded.
public enum AgentInstall {
    public static func install(archive: String, into directory: String, poller override: String?) async throws -> SPIFFEID {
        let state = AgentState(directory: directory)
        if state.hasIdentity { throw AgentError("\(directory) already holds an identity; use another --dir or remove \(directory)/identity") }
        if (try? state.package()) == nil {
            try PackageInstaller.install(archive: archive, into: directory, expecting: ["agent", "checker"])
        }
        let (manifest, token) = try state.package()
        guard let poller = override ?? (manifest.connect.isEmpty ? nil : manifest.connect) else {
            throw AgentError("the package names no poller address (its poller had not attested when it was downloaded); pass --poller HOST:PORT")
        }
        let id = try await AgentOnboarding.join(.init(poller: poller, token: token, caPin: manifest.caPin, expectedID: manifest.spiffeID,
                                                      expectedType: manifest.type), state: state)
        state.spendToken()
        return id
    }
}
