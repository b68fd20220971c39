import Foundation
import MusterConcurrency
import MusterIdentity
import SwiftASN1
import X509

/// What the agent's Workload API hands out right now: the identity, or why there is none.
public enum WorkloadMaterial: Sendable {
    /// No identity to serve (none yet, or the SVID expired while the poller was away): UNAVAILABLE.
    case unavailable(String)
    /// The poller refused the identity: PERMISSION_DENIED to every caller, open streams ended.
    case revoked(String)
    case serving(WorkloadSVID)
}

/// The agent's SVID as the Workload API sends it: DER chain (leaf first), PKCS#8 key, trust domain roots, and
/// the package's selectors that decide who may have it.
public struct WorkloadSVID: Sendable, Equatable {
    public let spiffeID: String
    public let trustDomain: String
    public let serial: String
    public let notAfter: Date
    public let chainDER: Data
    public let keyDER: Data
    public let bundleDER: Data
    public let selectors: [WorkloadSelector]

    /// Reads the identity the agent holds; an unreadable one, or selectors this agent cannot match, is an error
    /// (served as UNAVAILABLE, never as "everyone").
    public static func load(from state: AgentState) throws -> WorkloadSVID {
        let config = try state.config()
        let identity = try state.identity()
        let chain = try PEMDocument.parseMultiple(pemString: identity.chainPEM).map { try Certificate(pemDocument: $0) }
        let roots = try PEMDocument.parseMultiple(pemString: identity.bundlePEM).map {
            try Certificate(pemDocument: $0)
        }
        guard let leaf = chain.first, !roots.isEmpty else { throw AgentError("the stored identity is incomplete") }
        let selectors: [WorkloadSelector]
        do { selectors = try WorkloadSelector.parseAll(config.selectors ?? []) } catch {
            throw AgentError("the package's selectors cannot be served: \(error.message)")
        }
        return WorkloadSVID(
            spiffeID: config.spiffeID, trustDomain: config.trustDomain, serial: leaf.serialText,
            notAfter: leaf.notValidAfter, chainDER: try concatenated(chain), keyDER: try pkcs8(identity.keyPEM),
            bundleDER: try concatenated(roots), selectors: selectors)
    }

    /// The trust domain's ID as the Workload API keys bundles: `spiffe://TD`.
    public var trustDomainID: String { "spiffe://\(trustDomain)" }

    static func concatenated(_ certificates: [Certificate]) throws -> Data {
        var data = Data()
        for certificate in certificates { data.append(try certificate.derData()) }
        return data
    }

    /// The key as PKCS#8 DER, as the standard asks (the agent stores it as a `PRIVATE KEY` PEM block, which is that).
    static func pkcs8(_ pem: String) throws -> Data {
        let document = try PEMDocument(pemString: pem)
        guard document.discriminator == "PRIVATE KEY" else {
            throw AgentError("the SVID key is stored as \(document.discriminator), not as PKCS#8")
        }
        return Data(document.derBytes)
    }
}

/// The one place the agent's current Workload API material lives: the renewal loop and the identity watch
/// publish to it, every open workload stream follows it. A stream sees only the newest material (a slow
/// reader skips versions it missed, never falls behind).
public final class WorkloadIdentity: Sendable {
    private struct State {
        var current: WorkloadMaterial
        var followers: [UInt64: AsyncStream<WorkloadMaterial>.Continuation] = [:]
        var nextID: UInt64 = 0
    }

    private let state: LockedValue<State>

    public init(_ initial: WorkloadMaterial = .unavailable("the agent has not loaded its identity yet")) {
        state = LockedValue(State(current: initial))
    }

    public var current: WorkloadMaterial { state.withLock { $0.current } }

    /// Open workload streams (FetchX509SVID and FetchX509Bundles).
    public var openStreams: Int { state.withLock { $0.followers.count } }

    /// Replaces the material and hands it to every open stream. Revoked is final for the life of the process: a
    /// renewal or a load racing the revocation cannot undo it. The same reason for having nothing is no news.
    public func publish(_ material: WorkloadMaterial) {
        // Yielded under the lock, so two publishes reach every stream in the order they took effect (a stream
        // keeps only the newest: out of order it could keep the older one).
        state.withLock { state in
            switch (state.current, material) {
            case (.revoked, _): return
            case (.unavailable(let old), .unavailable(let new)) where old == new: return
            default: state.current = material
            }
            for follower in state.followers.values { follower.yield(material) }
        }
    }

    /// The current material at once, then every later one; the stream ends when the caller stops iterating.
    public func follow() -> AsyncStream<WorkloadMaterial> {
        let (stream, continuation) = AsyncStream<WorkloadMaterial>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let id = state.withLock { state in
            defer { state.nextID += 1 }
            state.followers[state.nextID] = continuation
            continuation.yield(state.current)
            return state.nextID
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.state.withLock { $0.followers.removeValue(forKey: id) }
        }
        return stream
    }
}
