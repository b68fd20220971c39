import Crypto
import Foundation
import MusterEdge
import MusterGRPC
import MusterIdentity
import MusterProto
import SwiftASN1
import X509

/// The poller's one-time attestation to Core: two fresh P-256 keys (SVID, downstream CA) generated here,
/// CSRs out, certificates back. Core is reached by the package's `connect` address and trusted only through
/// the CA pin in the manifest and Core's exact SPIFFE ID — never on first use.
public enum PollerAttestation {
    public static func attest(state: PollerState, advertise: String, timeout: Duration = .seconds(30)) async throws
        -> SPIFFEID
    {
        let manifest = try state.manifest()
        let token = try state.joinToken()
        guard !manifest.connect.isEmpty else { throw PollerError("the package names no Core address to connect to") }
        let expected = try SPIFFEID(parsing: manifest.spiffeID)
        let coreID = try MusterIDs.core(trustDomain: manifest.trustDomain)

        let svidKey = P256.Signing.PrivateKey()
        let caKey = P256.Signing.PrivateKey()
        var request = Muster_Onboarding_V1_AttestPollerRequest()
        request.joinToken = token
        request.svidCsr = Data(try csr(key: svidKey, ca: false))
        request.caCsr = Data(try csr(key: caKey, ca: true))
        request.advertiseAddress = advertise

        let channel = try GRPCChannel(
            target: manifest.connect, security: .tls(ClientTLS(trust: .pin(manifest.caPin), server: coreID)))
        let response: Muster_Onboarding_V1_AttestPollerResponse
        do {
            response = try await channel.unary(
                "/muster.onboarding.v1.CoreOnboarding/AttestPoller", request, options: CallOptions(timeout: timeout))
        } catch let error as RPCError {
            throw PollerError("Core refused the attestation: \(error.message) (\(error.code))")
        }
        // The trust anchors are what the package pins, never whatever else the answer carries.
        let pinned = try Certificate.list(derEncoded: response.bundle).filter { CAPin.of($0) == manifest.caPin }
        guard !pinned.isEmpty else { throw PollerError("Core's bundle does not hold the CA the package pins") }
        let issued = try await accept(
            svidChain: response.svidChain, caChain: response.caChain, trustedRoots: pinned,
            for: expected, svidKey: svidKey, caKey: caKey)
        try state.storeIdentity(
            svidChainPEM: try PEM.encode(issued.svid), svidKeyPEM: try PEM.encode(Certificate.PrivateKey(svidKey)),
            caChainPEM: try PEM.encode(issued.ca), caKeyPEM: try PEM.encode(Certificate.PrivateKey(caKey)),
            bundlePEM: try PEM.encode(issued.roots)
        )
        return expected
    }

    /// Checks what Core issued (at attestation or renewal) against roots the poller already trusts (the pinned
    /// root at first contact, its stored bundle at renewal): the SVID verifies for exactly `id`, the CA carries
    /// `id` and is signed by one of those roots, and each is over the key made here (the CA only when asked for).
    /// A bundle in the answer is never taken on its word.
    static func accept(
        svidChain: [Data], caChain: [Data], trustedRoots roots: [Certificate], for id: SPIFFEID,
        svidKey: P256.Signing.PrivateKey,
        caKey: P256.Signing.PrivateKey?
    ) async throws -> (svid: [Certificate], ca: [Certificate], roots: [Certificate]) {
        let svid = try Certificate.list(derEncoded: svidChain)
        let ca = try Certificate.list(derEncoded: caChain)
        let issued = try await SVIDVerifier(trustDomain: id.trustDomain, roots: roots).verify(chain: svid)
        guard issued.id == id, issued.isRootIssued, svid.first?.publicKey == Certificate.PublicKey(svidKey.publicKey)
        else {
            throw PollerError("Core answered with certificates for another identity or key")
        }
        if let caKey {
            guard let certificate = ca.first, certificate.publicKey == Certificate.PublicKey(caKey.publicKey),
                (try? SVIDVerifier.spiffeID(of: certificate)) == id,
                roots.contains(where: {
                    $0.subject == certificate.issuer
                        && $0.publicKey.isValidSignature(certificate.signature, for: certificate)
                }),
                certificate.notValidBefore <= Date(), Date() < certificate.notValidAfter
            else {
                throw PollerError(
                    "Core answered with a CA certificate that is not this poller's, or not signed by a trusted root")
            }
        }
        return (svid, ca, roots)
    }

    static func csr(key: P256.Signing.PrivateKey, ca: Bool) throws -> [UInt8] {
        try CSRBuilder.make(key: key, label: "muster-poller", ca: ca)
    }
}
