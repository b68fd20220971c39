import Foundation
import MusterEdge
import MusterIdentity

/// `muster-agent install`: the package is checked and installed like a poller's, then the agent joins the
/// poller the package names (or `--poller`), trusting it through the package's CA pin and expecting the
/// package's exact SPIFFE ID. The token file is removed once the join succeeded; a refusal or an unreachable
/// poller is retried for ten seconds (the poller may not have pulled the package yet).
public enum AgentInstall {
    /// How often a token refusal is retried (2 s apart) before the install gives up.
    static let retries = 5

    public static func install(archive: String, into directory: String, poller override: String?) async throws
        -> SPIFFEID
    {
        let state = AgentState(directory: directory)
        if state.hasIdentity {
            throw AgentError(
                "\(directory) already holds an identity; use another --dir or remove \(directory)/identity")
        }
        if (try? state.package()) == nil {
            try PackageInstaller.install(archive: archive, into: directory, expecting: ["agent", "checker"])
        }
        let (manifest, token) = try state.package()
        guard let poller = override ?? (manifest.connect.isEmpty ? nil : manifest.connect) else {
            throw AgentError(
                "the package names no poller address (its poller had not attested when it was downloaded); pass --poller HOST:PORT"
            )
        }
        guard let pollerName = manifest.pollerID else {
            throw AgentError("the package names no poller (manifest poller_id)")
        }
        let request = AgentOnboarding.JoinRequest(
            poller: poller, pollerID: pollerName, token: token, caPin: manifest.caPin,
            trustDomain: manifest.trustDomain, expectedID: manifest.spiffeID, expectedType: manifest.type)
        // A package fresh from Core may reach the installer before its poller has pulled it (the poller then does
        // not know the token yet, and has not spent it), or while the poller restarts: both are retried briefly.
        var attempt = 0
        while true {
            do {
                let id = try await AgentOnboarding.join(request, state: state)
                state.spendToken()
                return id
            } catch let error as AgentError where error.retryable && attempt < retries {
                attempt += 1
                try await Task.sleep(for: .seconds(2))
            }
        }
    }
}
