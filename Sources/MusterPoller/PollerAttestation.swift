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
    public static func attest(state: PollerState, advertise: String, timeout: Duration = .seconds(30)) async throws -> SPIFFEID {
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

        let channel = try GRPCChannel(target: manifest.connect, security: .tls(ClientTLS(trust: .pin(manifest.caPin), serverPolicy: .exactly(coreID))))
        let response: Muster_Onboarding_V1_AttestPollerResponse
        do {
            response = try await channel.unary("/muster.onboarding.v1.CoreOnboarding/AttestPoller", request, options: CallOptions(timeout: timeout))
        } catch let error as RPCError {
            throw PollerError("Core refused the attestation: \(error.message) (\(error.code))")
        }
        let roots = try response.bundle.map { try Certificate(derEncoded: Array($0)) }
        guard roots.contains(where: { CAPin.of($0) == manifest.caPin }) else {
            throw PollerError("Core's bundle does not hold the CA the package pins")
        }
        let svidChain = try response.svidChain.map { try Certificate(derEncoded: Array($0)) }
        let caChain = try response.caChain.map { try Certificate(derEncoded: Array($0)) }
        let verifier = SVIDVerifier(trustDomain: manifest.trustDomain, roots: roots)
        let issued = try await verifier.verify(chain: svidChain)
        guard issued == expected, svidChain.first?.publicKey == Certificate.PublicKey(svidKey.publicKey),
              caChain.first?.publicKey == Certificate.PublicKey(caKey.publicKey)
        else {
            throw PollerError("Core answered with certificates for another identity or key")
        }
        try state.storeIdentity(
            svidChainPEM: try PEM.encode(svidChain), svidKeyPEM: try PEM.encode(Certificate.PrivateKey(svidKey)),
            caChainPEM: try PEM.encode(caChain), caKeyPEM: try PEM.encode(Certificate.PrivateKey(caKey)),
            bundlePEM: try PEM.encode(roots)
        )
        return issued
    }

    static func csr(key: P256.Signing.PrivateKey, ca: Bool) throws -> [UInt8] {
        try CSRBuilder.make(key: key, label: "muster-poller", ca: ca)
    }
}
