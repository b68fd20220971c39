import Foundation
import Logging
import MusterDatabase
import MusterGRPC
import MusterIdentity
import MusterProto
import SwiftASN1
import X509

/// `muster.onboarding.v1.EdgeOnboarding` on the poller: agents and checkers on the local segment join with a
/// token Core streamed here (redeemed locally, once, with or without Core), renew with their SVID over mTLS,
/// and fetch the trust bundle. Their SVIDs come from the poller's downstream CA.
public struct EdgeOnboardingService: GRPCService {
    let identity: PollerIdentity
    let cache: PollerCache
    let outbox: OutboxSignal
    let standing: PollerStanding
    let svidTTL: TimeInterval
    let logger: Logger
    let enrollmentSettings: EnrollmentSettings
    let limiter: EnrollmentLimiter

    /// The one answer for every refused token; the poller's log keeps the real reason.
    static let refusedToken = RPCError(code: .unauthenticated, message: JoinToken.refusal)

    public init(
        identity: PollerIdentity, cache: PollerCache, outbox: OutboxSignal, standing: PollerStanding,
        svidTTL: TimeInterval, logger: Logger, enrollment: EnrollmentSettings = EnrollmentSettings()
    ) {
        self.enrollmentSettings = enrollment
        self.limiter = EnrollmentLimiter(interval: enrollment.interval)
        self.identity = identity
        self.cache = cache
        self.outbox = outbox
        self.standing = standing
        self.svidTTL = svidTTL
        self.logger = logger
    }

    public func register(with router: inout GRPCRouter) {
        router.unary("/muster.onboarding.v1.EdgeOnboarding/Join", Muster_Onboarding_V1_JoinRequest.self) {
            request, context in
            try await join(request, from: context.peerIP)
        }
        router.unary(
            "/muster.onboarding.v1.EdgeOnboarding/Renew", Muster_Onboarding_V1_RenewRequest.self, policy: agentPolicy
        ) { request, context in
            try await renew(request, peer: try context.peer(), from: context.peerIP)
        }
        router.unary("/muster.onboarding.v1.EdgeOnboarding/Enroll", Muster_Onboarding_V1_EnrollRequest.self) {
            request, context in
            try await enroll(request, from: context.peerIP)
        }
        router.unary(
            "/muster.onboarding.v1.EdgeOnboarding/EnrollmentStatus", Muster_Onboarding_V1_EnrollmentStatusRequest.self
        ) { request, context in
            try await enrollmentStatus(request, from: context.peerIP)
        }
        router.serverStreaming(
            "/muster.onboarding.v1.EdgeOnboarding/WatchIdentity", Muster_Onboarding_V1_WatchIdentityRequest.self,
            Muster_Onboarding_V1_IdentityNotice.self, policy: agentPolicy
        ) { _, writer, context in
            try await watchIdentity(peer: try context.peer(), writer: writer)
        }
        router.unary("/muster.onboarding.v1.EdgeOnboarding/GetBundle", Muster_Onboarding_V1_GetBundleRequest.self) {
            _, _ in
            var response = Muster_Onboarding_V1_GetBundleResponse()
            response.trustDomain = identity.trustDomain
            response.bundle = identity.rootsDER
            return response
        }
    }

    func join(_ request: Muster_Onboarding_V1_JoinRequest, from address: String) async throws
        -> Muster_Onboarding_V1_JoinResponse
    {
        guard !standing.isRevoked else { throw PollerStanding.refusal }
        let now = Clock.nowMillis()
        guard let token = try? JoinToken(parsing: request.joinToken) else {
            throw await refuse("malformed token", package: nil, from: address)
        }
        let key = try Self.publicKey(fromCSR: request.csr)
        let hash = ByteEncoding.hex(token.hash)
        // The token is claimed before anything is signed, by one statement of a group commit that also records
        // the SVID about to be signed (its serial and NotAfter chosen here) and queues its activation: a spent,
        // revoked, expired or unknown token costs that statement and no signature.
        let issuedAt = Date(timeIntervalSince1970: (Double(now) / 1000).rounded(.down))
        let lifetime = try leafLifetime(at: issuedAt)
        let serial = SerialNumber.random()
        let redeemed = try await store {
            try await cache.redeem(
                tokenHash: hash, at: now, serial: SerialNumber.text(serial),
                notAfter: Clock.millis(identity.authority.notValidAfter(lifetime: lifetime, now: issuedAt)),
                from: address)
        }
        guard let held = redeemed else {
            let held = try await store { try await cache.package(tokenHash: hash) }
            throw await refuse(
                Self.refusal(of: held, at: now) ?? "lost a race to another join", package: held?.id, from: address)
        }
        // Core streams only IDs under this poller; a cached package outside it (a corrupt cache) was claimed but is
        // never signed for, and Core refuses its activation (the ID is not the one it recorded for the package).
        guard let spiffeID = try? SPIFFEID(parsing: held.spiffeID), identity.serves(spiffeID) else {
            throw await refuse(
                "the cached package holds no SPIFFE ID under this poller", package: held.id, from: address)
        }
        let (leaf, chain) = try issue(spiffeID, key: key, lifetime: lifetime, now: issuedAt, serial: serial)
        outbox.ring()
        logger.notice(
            "agent joined",
            metadata: [
                "package": "\(held.id)", "spiffe_id": "\(spiffeID)", "from": "\(address)",
                "serial": "\(leaf.serialText)",
            ])
        var response = Muster_Onboarding_V1_JoinResponse()
        response.spiffeID = spiffeID.description
        response.svidChain = chain
        response.bundle = identity.rootsDER
        response.selectors = held.selectorList
        return response
    }

    /// A leaf from the downstream CA; never outlives the CA, and refused once the CA has expired.
    func issue(
        _ spiffeID: SPIFFEID, key: CSRCheck.CheckedKey, lifetime: TimeInterval? = nil, now: Date = Date(),
        serial: Certificate.SerialNumber = SerialNumber.random()
    ) throws -> (leaf: IssuedLeaf, chain: [Data]) {
        let authority = identity.authority
        let leaf = try authority.issueLeafDER(
            spiffeID: spiffeID, key: key, lifetime: try lifetime ?? leafLifetime(at: now), now: now, serial: serial)
        return (leaf, try authority.presentedChainDER(for: leaf))
    }

    /// How long a leaf signed at `now` lives: the SVID TTL, cut to what remains of the downstream CA; refused
    /// once the CA has (nearly) expired.
    func leafLifetime(at now: Date) throws -> TimeInterval {
        let remaining = identity.authority.certificate.notValidAfter.timeIntervalSince(now)
        guard remaining > 10 else {
            throw RPCError(
                code: .unavailable, message: "the poller's CA has expired and Core has not renewed it yet; retry later")
        }
        return min(svidTTL, remaining)
    }

    /// Logs a refused join and queues it for Core's audit log; the caller gets the one generic answer.
    func refuse(_ reason: String, package: String?, from address: String) async -> RPCError {
        logger.warning(
            "join refused", metadata: ["reason": "\(reason)", "package": "\(package ?? "-")", "from": "\(address)"])
        do {
            try await cache.queueRefusal(packageID: package, reason: reason, from: address, at: Clock.nowMillis())
            outbox.ring()
        } catch {
            logger.error("cannot queue a refused join for Core", metadata: ["error": "\(error)"])
        }
        return Self.refusedToken
    }

    /// Why a held package cannot be redeemed now, or nil if it can.
    static func refusal(of package: CachedPackage?, at now: Int64) -> String? {
        guard let package else { return "unknown token (not streamed to this poller)" }
        switch package.state {
        case "redeemed": return "token already used"
        case "revoked": return "package revoked"
        default: return package.expiresAt <= now ? "token expired" : nil
        }
    }

    static func publicKey(fromCSR der: Data) throws -> CSRCheck.CheckedKey {
        do {
            return try CSRCheck.checkedKey(fromDER: Array(der), purpose: .leaf)
        } catch {
            throw RPCError(code: .invalidArgument, message: "CSR refused: \(error.message)")
        }
    }

    /// Cache failures (disk full, I/O) become UNAVAILABLE; nothing was redeemed.
    func store<R: Sendable>(_ body: () async throws -> R) async throws -> R {
        do {
            return try await body()
        } catch {
            logger.error("poller cache failed", metadata: ["error": "\(error)"])
            throw RPCError(code: .unavailable, message: "the poller cannot reach its local store; retry")
        }
    }

}

extension RPCError {
    static let needsAgentSVID = RPCError(
        code: .unauthenticated, message: "renewal needs the agent's current X.509-SVID (mTLS)")
}
