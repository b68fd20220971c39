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
    /// What a join needs: the poller's address and name (its exact ID is the only server accepted), the token,
    /// the CA pin; `expectedID` (from a package manifest) is the exact ID the token must yield.
    public struct JoinRequest: Sendable {
        public var poller: String
        /// The poller's name, or its full SPIFFE ID.
        public var pollerID: String
        public var token: String
        public var caPin: String
        /// The trust domain, when known (a package says it); else the one the pinned root's chain names.
        public var trustDomain: String?
        public var expectedID: String?
        public var expectedType: String?

        public init(
            poller: String, pollerID: String, token: String, caPin: String, trustDomain: String? = nil,
            expectedID: String? = nil,
            expectedType: String? = nil
        ) {
            self.poller = poller
            self.pollerID = pollerID
            self.token = token
            self.caPin = caPin
            self.trustDomain = trustDomain
            self.expectedID = expectedID
            self.expectedType = expectedType
        }
    }

    /// The one server an agent accepts as its poller: exactly that poller's own SVID, signed by the root itself.
    static func pollerPolicy(name: String, trustDomain: String?) -> PeerPolicy {
        PeerPolicy { peer in
            guard let peer else {
                return RPCError(code: .unauthenticated, message: "the poller presented no certificate")
            }
            guard peer.musterID == .poller(name), trustDomain.map({ $0 == peer.spiffeID.trustDomain }) ?? true else {
                return RPCError(code: .permissionDenied, message: "\(peer.spiffeID) is not poller \(name)")
            }
            guard peer.isRootIssued else {
                return RPCError(code: .permissionDenied, message: "poller \(name)'s SVID must be issued by the root CA")
            }
            return nil
        }
    }

    /// The poller's name from `--poller-id` (a name or a full SPIFFE ID) and the trust domain the ID names, if any.
    static func pollerName(_ text: String, trustDomain: String?) throws -> (name: String, trustDomain: String?) {
        if text.hasPrefix("spiffe://") {
            guard let id = try? SPIFFEID(parsing: text), case .poller(let name) = MusterID(id) else {
                throw AgentError("--poller-id: '\(text)' is not a Muster poller ID (spiffe://TD/muster/poller/NAME)")
            }
            if let trustDomain, trustDomain != id.trustDomain {
                throw AgentError("--poller-id: \(id) is not in trust domain \(trustDomain)")
            }
            return (name, id.trustDomain)
        }
        do { try MusterIDs.checkName(text) } catch { throw AgentError("--poller-id: \(error)") }
        return (text, trustDomain)
    }

    /// Joins with a token; writes the identity; returns its SPIFFE ID.
    public static func join(_ join: JoinRequest, state: AgentState, timeout: Duration = .seconds(30)) async throws
        -> SPIFFEID
    {
        let pin: String
        do { pin = try CAPin.parse(join.caPin) } catch { throw AgentError("--ca-pin: \(error.message)") }
        guard let address = try? HostPort.parse(join.poller), !address.host.isEmpty, address.port > 0 else {
            throw AgentError("--poller must be host:port, got '\(join.poller)'")
        }
        let key = P256.Signing.PrivateKey()
        var request = Muster_Onboarding_V1_JoinRequest()
        request.joinToken = join.token
        request.csr = Data(try CSRBuilder.make(key: key, label: "muster-agent"))
        let poller = try pollerName(join.pollerID, trustDomain: join.trustDomain)
        let channel = try GRPCChannel(
            target: join.poller,
            security: .tls(
                ClientTLS(
                    trust: .pin(pin), trustDomain: poller.trustDomain,
                    serverPolicy: pollerPolicy(name: poller.name, trustDomain: poller.trustDomain)
                )))
        let response: Muster_Onboarding_V1_JoinResponse
        do {
            response = try await channel.unary(
                "/muster.onboarding.v1.EdgeOnboarding/Join", request, options: CallOptions(timeout: timeout))
        } catch let error as RPCError {
            throw AgentError(
                "the poller refused the join: \(error.message) (\(error.code))",
                retryable: error.code == .unauthenticated || error.code == .unavailable)
        }
        let (id, chain, roots) = try await accept(
            chain: response.svidChain, bundle: response.bundle, pin: pin, key: key)
        if let expected = join.expectedID, expected != id.description {
            throw AgentError("the poller issued \(id), but the package is for \(expected)")
        }
        guard MusterID(id)?.pollerName == poller.name else {
            throw AgentError("the poller issued \(id), which is not under poller \(poller.name)")
        }
        let pollerID = try MusterIDs.poller(trustDomain: id.trustDomain, name: poller.name)
        try state.store(
            chain: chain, key: key, roots: roots,
            config: .init(
                poller: join.poller, spiffeID: id.description, pollerID: pollerID.description,
                trustDomain: id.trustDomain, caPin: pin, selectors: response.selectors
            ))
        if let type = join.expectedType, let kind = MusterID(id)?.componentKind, kind != type {
            FileHandle.standardError.write(
                Data("muster-agent: note: joined as \(kind) \(id), not as \(type); the package decides\n".utf8))
        }
        return id
    }

    /// A channel to the agent's own poller over mTLS with the identity it holds: only that poller's ID, verified
    /// against the stored bundle, is accepted as the server.
    static func pollerChannel(state: AgentState, keepalive: GRPCChannel.Keepalive? = nil) throws -> GRPCChannel {
        let config = try state.config()
        let current = try state.identity()
        return try GRPCChannel(
            target: config.poller,
            security: .tls(
                ClientTLS(
                    trust: .bundle(rootsPEM: current.bundlePEM), server: try SPIFFEID(parsing: config.pollerID),
                    identity: CertifiedKey(certificateChainPEM: current.chainPEM, privateKeyPEM: current.keyPEM)
                )),
            keepalive: keepalive)
    }

    /// Renews over mTLS for the same identity with a fresh key; returns the new leaf.
    @discardableResult
    public static func renew(state: AgentState, timeout: Duration = .seconds(30)) async throws -> Certificate {
        let config = try state.config()
        let key = P256.Signing.PrivateKey()
        var request = Muster_Onboarding_V1_RenewRequest()
        request.csr = Data(try CSRBuilder.make(key: key, label: "muster-agent"))
        let channel = try pollerChannel(state: state)
        let response: Muster_Onboarding_V1_RenewResponse
        do {
            response = try await channel.unary(
                "/muster.onboarding.v1.EdgeOnboarding/Renew", request, options: CallOptions(timeout: timeout))
        } catch let error as RPCError {
            throw AgentError(
                "the poller refused the renewal: \(error.message) (\(error.code))",
                revoked: error.code == .permissionDenied)
        }
        let (id, chain, roots) = try await accept(
            chain: response.svidChain, bundle: response.bundle, pin: config.caPin, key: key)
        guard id.description == config.spiffeID else {
            throw AgentError("the poller renewed \(config.spiffeID) as \(id)")
        }
        var renewed = config
        renewed.selectors = response.selectors
        try state.store(chain: chain, key: key, roots: roots, config: renewed)
        return chain[0]
    }

    /// What a poller answered to a join or renewal: only the pinned root of the answer's bundle is kept (a bundle
    /// is never taken on the poller's word), and the chain must verify to it under Muster's path rule, carry an
    /// agent or checker ID and be over our key.
    static func accept(chain der: [Data], bundle: [Data], pin: String, key: P256.Signing.PrivateKey) async throws
        -> (id: SPIFFEID, chain: [Certificate], roots: [Certificate])
    {
        let roots = try Certificate.list(derEncoded: bundle).filter { CAPin.of($0) == pin }
        guard !roots.isEmpty else { throw AgentError("the poller's bundle does not hold the pinned CA") }
        let chain = try Certificate.list(derEncoded: der)
        return (try await verify(chain: chain, roots: roots, key: key), chain, roots)
    }

    static func verify(chain: [Certificate], roots: [Certificate], key: P256.Signing.PrivateKey) async throws
        -> SPIFFEID
    {
        guard let leaf = chain.first else { throw AgentError("the poller answered without a certificate") }
        let claimed = try SVIDVerifier.checkLeaf(leaf)
        let verified: VerifiedSVID
        do {
            verified = try await SVIDVerifier(trustDomain: claimed.trustDomain, roots: roots).verify(chain: chain)
        } catch {
            throw AgentError("the SVID from the poller does not verify: \(error.message)")
        }
        guard verified.musterID?.componentKind != nil, !verified.isRootIssued else {
            throw AgentError("the poller issued \(verified.id), which is not an agent or checker ID under its CA")
        }
        guard leaf.publicKey == Certificate.PublicKey(key.publicKey) else {
            throw AgentError("the poller's certificate is not for this agent's key")
        }
        return verified.id
    }
}
