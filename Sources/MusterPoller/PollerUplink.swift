import Crypto
import Foundation
import Logging
import MusterConcurrency
import MusterDatabase
import MusterEdge
import MusterGRPC
import MusterIdentity
import MusterProto
import X509

/// The poller's link to Core over mTLS with its SVID: the package stream into the cache, the activation
/// outbox (with a heartbeat while the stream is not live), and SVID/CA renewal at half-life. Each loop reconnects
/// on its own with exponential backoff and jitter, so agents keep joining through the poller while Core is away.
public struct PollerUplink: Sendable {
    let identity: PollerIdentity
    let cache: PollerCache
    let outbox: OutboxSignal
    let standing: PollerStanding
    let core: String
    let logger: Logger
    /// How often an idle outbox sends an empty report (Core's "last contact") while the package stream is not live.
    let heartbeat: Duration
    private let channels = LockedValue<(serial: String, channel: GRPCChannel)?>(nil)
    /// Whether the package stream is open and caught up (Core said so): Core then counts it as this poller's
    /// contact, and the outbox sends no heartbeat.
    private let live = LockedValue(false)

    public init(
        identity: PollerIdentity, cache: PollerCache, outbox: OutboxSignal, standing: PollerStanding, core: String,
        logger: Logger,
        heartbeat: Duration = .seconds(30)
    ) {
        self.identity = identity
        self.cache = cache
        self.outbox = outbox
        self.standing = standing
        self.core = core
        self.logger = logger
        self.heartbeat = heartbeat
    }

    /// The channel to Core for the poller's current SVID: kept while the SVID stays the same (gRPC core
    /// reconnects it as needed), replaced after a renewal so new connections present the new SVID.
    func channel() throws -> GRPCChannel {
        let serial = "\(identity.svid.serialText)"
        if let cached = channels.withLock({ $0 }), cached.serial == serial { return cached.channel }
        let coreID = try MusterIDs.core(trustDomain: identity.trustDomain)
        let channel = try GRPCChannel(
            target: core,
            security: .tls(
                ClientTLS(
                    trust: .bundle(rootsPEM: try PEM.encode(identity.roots)), server: coreID,
                    identity: try identity.clientIdentity
                )),
            // The package stream is idle for hours; pings find a connection that died under it (Core's host
            // rebooted, a link cut, a NAT that forgot the flow) within 30 s, so revocations are not held up.
            keepalive: .init(interval: .seconds(20), timeout: .seconds(10)))
        channels.withLock { $0 = (serial, channel) }
        return channel
    }

    /// Forgets the channel after a failed call, so the next attempt connects afresh on our own backoff rather
    /// than gRPC core's reconnect backoff (which grows to two minutes).
    func dropChannel() { channels.withLock { $0 = nil } }

    /// True while the package stream is live: Core hears from this poller through it.
    var streamIsLive: Bool { live.withLock { $0 } }

    public func watchLoop() async {
        var backoff = Backoff()
        while !Task.isCancelled, !standing.isRevoked {
            do {
                let cursor = try await cache.cursor()
                var request = Muster_Onboarding_V1_WatchPackagesRequest()
                request.cursor = cursor
                logger.info("watching Core for packages", metadata: ["core": "\(core)", "cursor": "\(cursor)"])
                defer { live.withLock { $0 = false } }
                try await channel().serverStreaming(
                    "/muster.onboarding.v1.CoreOnboarding/WatchPackages", request,
                    as: Muster_Onboarding_V1_PackageUpdate.self
                ) { stream in
                    for try await update in stream {
                        try await apply(update)
                        backoff.reset()
                    }
                }
                logger.warning("Core ended the package stream")
                try? await Task.sleep(for: backoff.next())
            } catch {
                if await stops(after: error, "package stream from Core lost", backoff: &backoff) { return }
            }
        }
    }

    /// The retry step every loop to Core shares, after a failed call: true when the loop should stop (it was
    /// cancelled, or Core refused this poller as revoked); otherwise the channel is dropped, the failure logged
    /// as `what`, and the backoff waited out.
    func stops(after error: any Error, _ what: Logger.Message, backoff: inout Backoff) async -> Bool {
        if Task.isCancelled { return true }
        if await refusedAsRevoked(error) { return true }
        dropChannel()
        logger.warning(what, metadata: ["error": "\(error)"])
        try? await Task.sleep(for: backoff.next())
        return false
    }

    /// Core answers PERMISSION_DENIED to a poller it no longer holds as active (revoked): the poller records
    /// that for good and stops onboarding. True when `error` was that answer.
    func refusedAsRevoked(_ error: any Error) async -> Bool {
        guard let error = error as? RPCError, error.code == .permissionDenied else { return false }
        if standing.markRevoked() {
            logger.critical(
                "Core refused this poller as revoked; it stops onboarding agents",
                metadata: ["reason": "\(error.message)"])
            do {
                try await cache.markRevokedByCore(at: Clock.nowMillis())
            } catch {
                logger.error("cannot record the revocation in the cache", metadata: ["error": "\(error)"])
            }
        }
        return true
    }

    func apply(_ update: Muster_Onboarding_V1_PackageUpdate) async throws {
        switch update.change {
        case .pending(let package):
            guard let spiffeID = try? SPIFFEID(parsing: package.spiffeID), identity.serves(spiffeID),
                package.tokenHash.count == 32
            else {
                logger.error(
                    "Core sent a package this poller cannot serve; ignored", metadata: ["package": "\(package.id)"])
                return
            }
            let selectors = Self.selectorsJSON(package.selectors)
            try await cache.receive(
                CachedPackage(
                    id: package.id, componentType: package.componentType, name: package.name,
                    spiffeID: package.spiffeID,
                    tokenHash: ByteEncoding.hex(Array(package.tokenHash)), expiresAt: package.expiresAtUnixMs,
                    selectors: selectors, state: "pending"
                ), cursor: update.cursor)
            logger.info("package cached", metadata: ["package": "\(package.id)", "spiffe_id": "\(package.spiffeID)"])
        case .revoked(let revocation):
            try await cache.revoke(
                packageID: revocation.packageID, spiffeID: revocation.spiffeID, serials: revocation.serials,
                cursor: update.cursor, at: Clock.nowMillis())
            standing.revocations.revoked(revocation.spiffeID)
            logger.notice(
                "package revoked by Core",
                metadata: ["package": "\(revocation.packageID)", "spiffe_id": "\(revocation.spiffeID)"])
        case .decision(let decision):
            try await apply(decision, cursor: update.cursor)
        case nil:
            // No change: the stream has caught up and is live.
            let first = live.withLock { value in
                defer { value = true }
                return !value
            }
            if first { logger.info("package stream live; it is this poller's contact with Core") }
        }
    }

    func apply(_ decision: Muster_Onboarding_V1_EnrollmentDecision, cursor: Int64) async throws {
        var package: CachedPackage?
        if decision.hasPackage {
            let pending = decision.package
            guard let spiffeID = try? SPIFFEID(parsing: pending.spiffeID), identity.serves(spiffeID) else {
                logger.error(
                    "Core approved an enrollment with an identity this poller cannot serve; ignored",
                    metadata: ["enrollment": "\(decision.requestID)"])
                return
            }
            let selectors = Self.selectorsJSON(pending.selectors)
            package = CachedPackage(
                id: pending.id, componentType: pending.componentType, name: pending.name, spiffeID: pending.spiffeID,
                tokenHash: nil, expiresAt: pending.expiresAtUnixMs, selectors: selectors, state: "pending")
        }
        let outcome = try await cache.applyDecision(
            requestID: decision.requestID, status: decision.status, reason: decision.reason,
            keyFingerprint: decision.keyFingerprint, package: package, cursor: cursor)
        switch outcome {
        case .applied:
            logger.notice(
                "enrollment decided at Core",
                metadata: ["enrollment": "\(decision.requestID)", "status": "\(decision.status)"])
        case .keyMismatch:
            logger.critical(
                "Core's approval names another key than the request's; refused, nothing will be issued",
                metadata: ["enrollment": "\(decision.requestID)", "approved_key": "\(decision.keyFingerprint)"])
        case .unknownRequest:
            logger.warning(
                "a decision for an enrollment this poller does not hold",
                metadata: ["enrollment": "\(decision.requestID)"])
        }
    }

    /// Selectors as the cache stores them: a JSON array of `type:value` strings.
    static func selectorsJSON(_ selectors: [String]) -> String {
        (try? JSONSerialization.data(withJSONObject: selectors)).map { String(decoding: $0, as: UTF8.self) } ?? "[]"
    }
}
