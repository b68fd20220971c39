import Foundation
import Logging
import MusterGRPC
import MusterIdentity
import MusterProto
import X509

/// What `muster-poller status` reports: the package, the identity and its lifetimes, and whether Core answers.
public struct PollerStatus: Sendable {
    public var lines: [String] = []
    public var coreReachable = false

    public static func read(state: PollerState, timeout: Duration = .seconds(5)) async -> PollerStatus {
        var status = PollerStatus()
        guard let manifest = try? state.manifest() else {
            status.lines.append("package:   none installed in \(state.directory)")
            return status
        }
        status.lines.append("package:   \(manifest.id) (\(manifest.type) \(manifest.name))")
        status.lines.append("identity:  \(manifest.spiffeID)")
        status.lines.append("core:      \(manifest.connect) (pinned \(manifest.caPin))")
        guard state.isAttested, let svidPEM = try? state.read(state.svidPath),
            let keyPEM = try? state.read(state.svidKeyPath),
            let bundlePEM = try? state.read(state.bundlePath),
            let svid = try? Certificate(pemEncoded: svidPEM),
            let ca = try? Certificate(pemEncoded: state.read(state.caPath))
        else {
            status.lines.append("attested:  no (run muster-poller run)")
            return status
        }
        status.lines.append(
            "attested:  yes; SVID until \(svid.notValidAfter.formatted(.iso8601)), CA until \(ca.notValidAfter.formatted(.iso8601))"
        )
        status.lines += await cacheLines(state: state)
        do {
            let coreID = try MusterIDs.core(trustDomain: manifest.trustDomain)
            let channel = try GRPCChannel(
                target: manifest.connect,
                security: .tls(
                    ClientTLS(
                        trust: .bundle(rootsPEM: bundlePEM), server: coreID,
                        identity: CertifiedKey(certificateChainPEM: svidPEM, privateKeyPEM: keyPEM))))
            var request = Grpc_Health_V1_HealthCheckRequest()
            request.service = "muster.onboarding.v1.CoreOnboarding"
            let reply = try await channel.unary(
                "/grpc.health.v1.Health/Check", request, as: Grpc_Health_V1_HealthCheckResponse.self,
                options: CallOptions(timeout: timeout))
            status.coreReachable = reply.status == .serving
            status.lines.append("core:      reachable over mTLS, \(reply.status)")
        } catch {
            status.lines.append("core:      unreachable (\(error))")
        }
        return status
    }

    /// What the durable cache holds (read beside a running poller: SQLite's WAL lets readers in).
    static func cacheLines(state: PollerState) async -> [String] {
        guard FileManager.default.fileExists(atPath: state.cachePath) else { return ["packages:  none cached yet"] }
        let cache = PollerCache(path: state.cachePath, logger: Logger(label: "muster.poller.status"))
        let lines: [String]
        do {
            let counts = try await cache.summary()
            let n = { (key: String) in counts[key] ?? 0 }
            let revoked = counts["revoked_by_core"].map {
                Date(timeIntervalSince1970: TimeInterval($0) / 1000).formatted(.iso8601)
            }
            lines =
                (revoked.map {
                    ["standing:  REVOKED by Core (refused at \($0)); this poller no longer onboards agents"]
                } ?? []) + [
                    "packages:  \(n("packages_pending")) pending, \(n("packages_redeemed")) redeemed, \(n("packages_revoked")) revoked",
                    "issued:    \(n("issued")) agent SVIDs; outbox: \(n("outbox")) activations waiting for Core; stream cursor \(n("cursor"))",
                    "refusals:  \(n("refusals")) refused joins waiting for Core's audit log",
                    "enrollments: \(n("enrollments_pending")) pending (\(n("enrollments_unrelayed")) not yet relayed to Core), "
                        + "\(n("enrollments_approved")) approved, \(n("enrollments_activated")) collected, "
                        + "\(n("enrollments_denied")) denied, \(n("enrollments_expired")) expired",
                ]
        } catch {
            lines = ["packages:  cannot read \(state.cachePath): \(error)"]
        }
        // Closed before returning: SQLiteNIO insists every connection is closed before it is freed.
        await cache.close()
        return lines
    }
}
