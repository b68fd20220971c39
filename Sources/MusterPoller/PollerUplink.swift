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
/// outbox (with a heartbeat), and SVID/CA renewal at half-life. Each loop reconnects on its own with
/// exponential backoff and jitter, so agents keep joining through the poller while Core is away.
public struct PollerUplink: Sendable {
    let identity: PollerIdentity
    let cache: PollerCache
    let outbox: OutboxSignal
    let standing: PollerStanding
    let core: String
    let logger: Logger
    /// How often an idle outbox sends an empty report (Core's "last contact").
    let heartbeat: Duration
    private let channels = LockedValue<(serial: String, channel: GRPCChannel)?>(nil)

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
                )))
        channels.withLock { $0 = (serial, channel) }
        return channel
    }

    /// Forgets the channel after a failed call, so the next attempt connects afresh on our own backoff rather
    /// than gRPC core's reconnect backoff (which grows to two minutes).
    func dropChannel() { channels.withLock { $0 = nil } }

    public func watchLoop() async {
        var backoff = Backoff()
        while !Task.isCancelled, !standing.isRevoked {
            do {
                let cursor = try await cache.cursor()
                var request = Muster_Onboarding_V1_WatchPackagesRequest()
                request.cursor = cursor
                logger.info("watching Core for packages", metadata: ["core": "\(core)", "cursor": "\(cursor)"])
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
            let selectors =
                (try? JSONSerialization.data(withJSONObject: package.selectors)).map {
                    String(decoding: $0, as: UTF8.self)
                } ?? "[]"
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
            logger.notice(
                "package revoked by Core",
                metadata: ["package": "\(revocation.packageID)", "spiffe_id": "\(revocation.spiffeID)"])
        case nil:
            break
        }
    }
}
