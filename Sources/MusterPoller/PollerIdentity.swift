import Crypto
import Foundation
import MusterConcurrency
import MusterGRPC
import MusterIdentity
import SwiftASN1
import X509

/// The poller's live identity in memory: its SVID (served to agents, presented to Core), its downstream CA
/// (signs agent SVIDs) and the trust bundle. Renewal replaces it whole, on disk first, then here and in
/// the TLS server's certificates (new handshakes pick it up).
public final class PollerIdentity: Sendable {
    struct Material: Sendable {
        var svidChain: [Certificate]
        var svidKeyPEM: String
        var authority: CertificateAuthority
        /// The CA this poller held before its last CA renewal: agents keep SVIDs it signed until they renew.
        var previousCA: Certificate?
        private(set) var roots: [Certificate]
        /// The roots as every answer to an agent carries them, written once a bundle.
        private(set) var rootsDER: [Data]

        init(
            svidChain: [Certificate], svidKeyPEM: String, authority: CertificateAuthority, previousCA: Certificate?,
            roots: [Certificate]
        ) throws {
            self.svidChain = svidChain
            self.svidKeyPEM = svidKeyPEM
            self.authority = authority
            self.previousCA = previousCA
            self.roots = []
            self.rootsDER = []
            try replaceRoots(roots)
        }

        mutating func replaceRoots(_ roots: [Certificate]) throws {
            rootsDER = try roots.map { try $0.derData() }
            self.roots = roots
        }
    }

    public let spiffeID: SPIFFEID
    public let trustDomain: String
    public let serverCertificates: ServerCertificates
    let state: PollerState
    private let material: LockedValue<Material>

    public init(state: PollerState) throws {
        let manifest = try state.manifest()
        func certificates(_ path: String) throws -> [Certificate] {
            let chain = try PEMDocument.parseMultiple(pemString: try state.read(path)).map {
                try Certificate(pemDocument: $0)
            }
            guard !chain.isEmpty else { throw PollerError("\(path) holds no certificate") }
            return chain
        }
        let caChain = try certificates(state.caPath)
        let caKey = try Certificate.PrivateKey(pemEncoded: try state.read(state.caKeyPath))
        let roots = try certificates(state.bundlePath)
        let material = try Material(
            svidChain: try certificates(state.svidPath), svidKeyPEM: try state.read(state.svidKeyPath),
            authority: CertificateAuthority(
                certificate: caChain[0], privateKey: caKey, chainToRoot: Array(caChain.dropFirst())),
            previousCA: (try? state.read(state.previousCAPath)).flatMap { try? Certificate(pemEncoded: $0) },
            roots: roots
        )
        self.state = state
        self.trustDomain = manifest.trustDomain
        self.spiffeID = try SPIFFEID(parsing: manifest.spiffeID)
        self.material = LockedValue(material)
        self.serverCertificates = ServerCertificates(
            identity: try Self.serving(material), trustRootsPEM: try PEM.encode(roots),
            trustDomain: manifest.trustDomain)
    }

    var current: Material { material.withLock { $0 } }
    public var authority: CertificateAuthority { current.authority }
    public var roots: [Certificate] { current.roots }
    /// The roots' DER, as answers to agents carry the bundle.
    public var rootsDER: [Data] { current.rootsDER }
    public var svid: Certificate { current.svidChain[0] }

    /// True for an agent or checker ID of this poller in its trust domain: the only IDs it serves and signs.
    public func serves(_ id: SPIFFEID) -> Bool {
        guard id.trustDomain == trustDomain, let parsed = MusterID(id), let poller = MusterID(spiffeID) else {
            return false
        }
        return parsed.isServed(by: poller)
    }

    /// True when `issuer` (from a verified path) is this poller's current CA or the one it replaced.
    public func issuedHere(_ issuer: Certificate) -> Bool {
        let material = current
        return issuer == material.authority.certificate || issuer == material.previousCA
    }

    /// What the poller presents to Core for mTLS.
    public var clientIdentity: CertifiedKey {
        get throws {
            let material = current
            return CertifiedKey(
                certificateChainPEM: try PEM.encode(material.svidChain), privateKeyPEM: material.svidKeyPEM)
        }
    }

    /// What the poller serves to agents: its SVID with the root appended, so an agent that knows only the
    /// CA pin can check the chain up to the pinned key.
    static func serving(_ material: Material) throws -> CertifiedKey {
        CertifiedKey(
            certificateChainPEM: try PEM.encode(material.svidChain + material.roots), privateKeyPEM: material.svidKeyPEM
        )
    }

    /// Stores a renewed SVID (and CA, if renewed) on disk as one directory, then switches to it.
    func replace(
        svidChain: [Certificate], svidKey: P256.Signing.PrivateKey,
        ca: (chain: [Certificate], key: P256.Signing.PrivateKey)?, roots: [Certificate]
    ) throws {
        var next = current
        next.svidChain = svidChain
        next.svidKeyPEM = try PEM.encode(Certificate.PrivateKey(svidKey))
        if let ca {
            next.previousCA = next.authority.certificate
            next.authority = CertificateAuthority(
                certificate: ca.chain[0], privateKey: Certificate.PrivateKey(ca.key),
                chainToRoot: Array(ca.chain.dropFirst()))
        }
        try next.replaceRoots(roots)
        try state.storeIdentity(
            svidChainPEM: try PEM.encode(next.svidChain), svidKeyPEM: next.svidKeyPEM,
            caChainPEM: try PEM.encode([next.authority.certificate] + next.authority.chainToRoot),
            caKeyPEM: try PEM.encode(next.authority.privateKey), bundlePEM: try PEM.encode(roots),
            previousCAPEM: try next.previousCA.map { try PEM.encode([$0]) }, replacing: true
        )
        let serving = try Self.serving(next)
        material.withLock { $0 = next }
        serverCertificates.update(identity: serving, trustRootsPEM: try PEM.encode(roots))
    }
}
