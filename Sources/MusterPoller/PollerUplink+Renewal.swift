import Crypto
import Foundation
import MusterEdge
import MusterGRPC
import MusterIdentity
import MusterProto
import X509

extension PollerUplink {
    public func renewLoop() async {
        var backoff = Backoff(cap: 60)
        while !Task.isCancelled, !standing.isRevoked {
            let wait = Self.halfLife(of: identity.svid).timeIntervalSinceNow
            if wait > 0 {
                try? await Task.sleep(for: .seconds(min(wait, 300)))
                continue
            }
            do {
                try await renew()
                backoff.reset()
            } catch {
                if await stops(after: error, "cannot renew the poller's SVID; retrying", backoff: &backoff) { return }
            }
        }
    }

    /// Renews the SVID, and the CA too once it is past its own half-life; fresh keys, only CSRs leave.
    func renew() async throws {
        let svidKey = P256.Signing.PrivateKey()
        let renewCA = Self.halfLife(of: identity.authority.certificate) <= Date()
        let caKey = renewCA ? P256.Signing.PrivateKey() : nil
        var request = Muster_Onboarding_V1_RenewPollerRequest()
        request.svidCsr = Data(try PollerAttestation.csr(key: svidKey, ca: false))
        if let caKey { request.caCsr = Data(try PollerAttestation.csr(key: caKey, ca: true)) }
        let response = try await channel().unary(
            "/muster.onboarding.v1.CoreOnboarding/RenewPoller", request,
            as: Muster_Onboarding_V1_RenewPollerResponse.self, options: CallOptions(timeout: .seconds(30)))
        // Verified against the roots already held; the answer's bundle cannot replace them.
        let issued = try await PollerAttestation.accept(
            svidChain: response.svidChain, caChain: response.caChain, trustedRoots: identity.roots,
            for: identity.spiffeID, svidKey: svidKey, caKey: caKey)
        try identity.replace(
            svidChain: issued.svid, svidKey: svidKey, ca: caKey.map { (issued.ca, $0) }, roots: issued.roots)
        logger.notice(
            "renewed the poller's SVID\(caKey == nil ? "" : " and CA")",
            metadata: [
                "svid_until": "\(issued.svid[0].notValidAfter.formatted(.iso8601))"
            ])
    }

    static func halfLife(of certificate: Certificate) -> Date {
        certificate.notValidBefore.addingTimeInterval(
            certificate.notValidAfter.timeIntervalSince(certificate.notValidBefore) / 2)
    }
}
