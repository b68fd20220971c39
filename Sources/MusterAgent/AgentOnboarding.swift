import Crypto
import Foundation
import MusterEdge
import MusterGRPC
import MusterIdentity
import MusterProto
import X509

/// How an agent or checker gets and keeps its SVID from its poller: a fresh P-256 key made here for every
/// certificate, only the CSR sent. First contact trusts the poller through the CA pin (never on first use);
/// renewals use mTLS with the current SVID and the stored bundle.
public enum AgentOnboarding {
    /// What a join needs; `expected` (from a package manifest) is the exact ID the token must yield.
    public struct JoinRequest: Sendable {
        public var poller: String
        public var token: String
        public var caPin: String
        public var expectedID: String?
        public var expectedType: String?

        public init(poller: String, token: String, caPin: String, expectedID: String? = nil, expectedType: String? = nil) {
            self.poller = poller
            self.token = token
            self.caPin = caPin
            self.expectedID = expectedID
            self.expectedType = expectedType
        }
    }

    /// A server this agent accepts as its poller: a Muster poller SVID (`spiffe://TD/muster/poller/NAME`).
    static func pollerPolicy(exactly id: SPIFFEID? = nil) -> PeerPolicy {
        if let id { return .exactly(id) }
        return PeerPolicy { peer in
            guard let peer else { return RPCError(code: .unauthenticated, message: "the poller presented no certificate") }
            let segments = peer.spiffeID.segments
            guard segments.count == 3, segments[0] == "muster", segments[1] == "poller" else {
                return RPCError(code: .permissionDenied, message: "\(peer.spiffeID) is not a Muster poller")
            }
            return nil
        }
    }

    /// Joins with a token; writes the identity; returns its SPIFFE ID.
    public static func join(_ join: JoinRequest, state: AgentState, timeout: Duration = .seconds(30)) async throws -> SPIFFEID {
        let pin: String
        do { pin = try CAPin.parse(join.caPin) } catch { throw AgentError("--ca-pin: \(error.message)") }
        guard let address = try? HostPort.parse(join.poller), !address.host.isEmpty, address.port > 0 else {
            throw AgentError("--poller must be host:port, got '\(join.poller)'")
        }
        let key = P256.Signing.PrivateKey()
        var request = Muster_Onboarding_V1_JoinRequest()
        request.joinToken = join.token
        request.csr = Data(try CSRBuilder.make(key: key, label: "muster-agent"))
        let channel = try GRPCChannel(target: join.poller, security: .tls(ClientTLS(trust: .pin(pin), serverPolicy: pollerPolicy())))
        let response: Muster_Onboarding_V1_JoinResponse
        do {
            response = try await channel.unary("/muster.onboarding.v1.EdgeOnboarding/Join", request, options: CallOptions(timeout: timeout))
        } catch let error as RPCError {
            throw AgentError("the poller refused the join: \(error.message) (\(error.code))", retryable: error.code == .unauthenticated || error.code == .unavailable)
        }
        let (id, chain, roots) = try await accept(chain: response.svidChain, bundle: response.bundle, pin: pin, key: key)
        if let expected = join.expectedID, expected != id.description {
            throw AgentError("the poller issued \(id), but the package is for \(expected)")
        }
        let pollerID = try MusterIDs.poller(trustDomain: id.trustDomain, name: String(id.segments[2]))
        try state.store(chain: chain, key: key, roots: roots, config: .init(
            poller: join.poller, spiffeID: id.description, pollerID: pollerID.description, trustDomain: id.trustDomain, caPin: pin
        ))
        if let type = join.expectedType, id.segments[3] != type {
            FileHandle.standardError.write(Data("muster-agent: note: joined as \(id.segments[3]) \(id), not as \(type); the package decides\n".utf8))
        }
        return id
    }

    /// Renews over mTLS for the same identity with a fresh key; returns the new leaf.
    @discardableResult
    public static func renew(state: AgentState, timeout: Duration = .seconds(30)) async throws -> Certificate {
        let config = try state.config()
        let current = try state.identity()
        let key = P256.Signing.PrivateKey()
        var request = Muster_Onboarding_V1_RenewRequest()
        request.csr = Data(try CSRBuilder.make(key: key, label: "muster-agent"))
        let channel = try GRPCChannel(target: config.poller, security: .tls(ClientTLS(
            trust: .bundle(rootsPEM: current.bundlePEM), serverPolicy: pollerPolicy(exactly: try SPIFFEID(parsing: config.pollerID)),
            identity: CertifiedKey(certificateChainPEM: current.chainPEM, privateKeyPEM: current.keyPEM)
        )))
        let response: Muster_Onboarding_V1_RenewResponse
        do {
            response = try await channel.unary("/muster.onboarding.v1.EdgeOnboarding/Renew", request, options: CallOptions(timeout: timeout))
        } catch let error as RPCError {
            throw AgentError("the poller refused the renewal: \(error.message) (\(error.code))", revoked: error.code == .permissionDenied)
        }
        let (id, chain, roots) = try await accept(chain: response.svidChain, bundle: response.bundle, pin: config.caPin, key: key)
        guard id.description == config.spiffeID else { throw AgentError("the poller renewed \(config.spiffeID) as \(id)") }
        try state.store(chain: chain, key: key, roots: roots, config: config)
        return chain[0]
    }

    /// What a poller answered to a join or renewal: the bundle must hold the pinned root, and the chain must verify
    /// to it under Muster's path rule, carry an agent or checker ID and be over our key.
    static func accept(chain der: [Data], bundle: [Data], pin: String, key: P256.Signing.PrivateKey) async throws
        -> (id: SPIFFEID, chain: [Certificate], roots: [Certificate]) {
        let roots = try Certificate.list(derEncoded: bundle)
        guard roots.contains(where: { CAPin.of($0) == pin }) else { throw AgentError("the poller's bundle does not hold the pinned CA") }
        let chain = try Certificate.list(derEncoded: der)
        return (try await verify(chain: chain, roots: roots, key: key), chain, roots)
    }

    static func verify(chain: [Certificate], roots: [Certificate], key: P256.Signing.PrivateKey) async throws -> SPIFFEID {
        guard let leaf = chain.first else { throw AgentError("the poller answered without a certificate") }
        let claimed = try SVIDVerifier.checkLeaf(leaf)
        let id: SPIFFEID
        do {
            id = try await SVIDVerifier(trustDomain: claimed.trustDomain, roots: roots).verify(chain: chain)
        } catch {
            throw AgentError("the SVID from the poller does not verify: \(error.message)")
        }
        let segments = id.segments
        guard segments.count == 5, segments[0] == "muster", segments[1] == "poller", ["agent", "checker"].contains(segments[3]) else {
            throw AgentError("the poller issued \(id), which is not an agent or checker ID")
        }
        guard leaf.publicKey == Certificate.PublicKey(key.publicKey) else { throw AgentError("the poller's certificate is not for this agent's key") }
        return id
    }
}
