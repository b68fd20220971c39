import Crypto
import Foundation
import Logging
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
    let core: String
    let logger: Logger
    /// How often an idle outbox sends an empty report (Core's "last contact").
    let heartbeat: Duration

    public init(identity: PollerIdentity, cache: PollerCache, outbox: OutboxSignal, core: String, logger: Logger, heartbeat: Duration = .seconds(30)) {
        self.identity = identity
        self.cache = cache
        self.outbox = outbox
        self.core = core
        self.logger = logger
        self.heartbeat = heartbeat
    }

    /// A channel with the poller's current SVID (a renewal takes effect on the next channel).
    func channel() throws -> GRPCChannel {
        let coreID = try MusterIDs.core(trustDomain: identity.trustDomain)
        return try GRPCChannel(target: core, security: .tls(ClientTLS(
            trust: .bundle(rootsPEM: try PEM.encode(identity.roots)), serverPolicy: .exactly(coreID), identity: try identity.clientIdentity
        )))
    }

    // MARK: Package stream

    public func watchLoop() async {
        var backoff = Backoff()
        while !Task.isCancelled {
            do {
                let cursor = try await cache.cursor()
                var request = Muster_Onboarding_V1_WatchPackagesRequest()
                request.cursor = cursor
                logger.info("watching Core for packages", metadata: ["core": "\(core)", "cursor": "\(cursor)"])
                try await channel().serverStreaming("/muster.onboarding.v1.CoreOnboarding/WatchPackages", request,
                                                    as: Muster_Onboarding_V1_PackageUpdate.self) { stream in
                    for try await update in stream {
                        try await apply(update)
                        backoff.reset()
                    }
                }
                logger.warning("Core ended the package stream")
            } catch {
                if Task.isCancelled { return }
                logger.warning("package stream from Core lost", metadata: ["error": "\(error)"])
            }
            try? await Task.sleep(for: backoff.next())
        }
    }

    func apply(_ update: Muster_Onboarding_V1_PackageUpdate) async throws {
        switch update.change {
        case .pending(let package):
            guard let spiffeID = try? SPIFFEID(parsing: package.spiffeID), spiffeID.isWithin(identity.spiffeID), package.tokenHash.count == 32 else {
                logger.error("Core sent a package this poller cannot serve; ignored", metadata: ["package": "\(package.id)"])
                return
            }
            let selectors = (try? JSONSerialization.data(withJSONObject: package.selectors)).map { String(decoding: $0, as: UTF8.self) } ?? "[]"
            try await cache.receive(CachedPackage(
                id: package.id, componentType: package.componentType, name: package.name, spiffeID: package.spiffeID,
                tokenHash: ByteEncoding.hex(Array(package.tokenHash)), expiresAt: package.expiresAtUnixMs, selectors: selectors, state: "pending"
            ), cursor: update.cursor)
            logger.info("package cached", metadata: ["package": "\(package.id)", "spiffe_id": "\(package.spiffeID)"])
        case .revoked(let revocation):
            try await cache.revoke(packageID: revocation.packageID, spiffeID: revocation.spiffeID, serials: revocation.serials,
                                   cursor: update.cursor, at: Int64(Date().timeIntervalSince1970 * 1000))
            logger.notice("package revoked by Core", metadata: ["package": "\(revocation.packageID)", "spiffe_id": "\(revocation.spiffeID)"])
        case nil:
            break
        }
    }

    // MARK: Activation outbox

    public func outboxLoop() async {
        var backoff = Backoff()
        var lastReport = ContinuousClock.now - heartbeat
        while !Task.isCancelled {
            let due = outbox.take() || ContinuousClock.now - lastReport >= heartbeat
            guard due else {
                try? await Task.sleep(for: .milliseconds(100))
                continue
            }
            do {
                try await flush()
                lastReport = .now
                backoff.reset()
            } catch {
                if Task.isCancelled { return }
                logger.warning("cannot report activations to Core; kept in the outbox", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: backoff.next())
                outbox.ring()
            }
        }
    }

    /// Sends the outbox (activations, and refused joins for Core's audit log) in batches until it is empty; an
    /// empty outbox sends one empty report, the heartbeat.
    func flush() async throws {
        let channel = try channel()
        repeat {
            let batch = try await cache.outbox(limit: 100)
            let refusals = try await cache.refusals(limit: 100)
            var request = Muster_Onboarding_V1_ReportActivationsRequest()
            request.refusals = refusals.map { item in
                var refusal = Muster_Onboarding_V1_JoinRefusal()
                refusal.packageID = item.packageID
                refusal.reason = item.reason
                refusal.sourceAddress = item.sourceAddress
                refusal.atUnixMs = item.at
                return refusal
            }
            request.activations = batch.map { item in
                var activation = Muster_Onboarding_V1_Activation()
                activation.packageID = item.packageID
                activation.spiffeID = item.spiffeID
                activation.sourceAddress = item.sourceAddress
                activation.activatedAtUnixMs = item.activatedAt
                activation.serial = item.serial
                return activation
            }
            let response = try await channel.unary("/muster.onboarding.v1.CoreOnboarding/ReportActivations", request,
                                                   as: Muster_Onboarding_V1_ReportActivationsResponse.self, options: CallOptions(timeout: .seconds(15)))
            let accepted = Set(response.accepted)
            for item in batch where !accepted.contains(item.packageID) {
                logger.error("Core refused an activation for good (see Core's audit log); dropped", metadata: ["package": "\(item.packageID)"])
            }
            // Accepted and refused-for-good both leave the outbox; a failed call leaves everything in it.
            try await cache.removeFromOutbox(batch.map(\.packageID))
            if let last = refusals.last?.id { try await cache.removeRefusals(through: last) }
            if !batch.isEmpty { logger.info("activations reported to Core", metadata: ["count": "\(accepted.count)"]) }
            if batch.count < 100 && refusals.count < 100 { return }
        } while !Task.isCancelled
    }

    // MARK: Renewal

    public func renewLoop() async {
        var backoff = Backoff(cap: 60)
        while !Task.isCancelled {
            let wait = Self.halfLife(of: identity.svid).timeIntervalSinceNow
            if wait > 0 {
                try? await Task.sleep(for: .seconds(min(wait, 300)))
                continue
            }
            do {
                try await renew()
                backoff.reset()
            } catch {
                if Task.isCancelled { return }
                logger.warning("cannot renew the poller's SVID; retrying", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: backoff.next())
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
        let response = try await channel().unary("/muster.onboarding.v1.CoreOnboarding/RenewPoller", request,
                                                 as: Muster_Onboarding_V1_RenewPollerResponse.self, options: CallOptions(timeout: .seconds(30)))
        let roots = try response.bundle.map { try Certificate(derEncoded: Array($0)) }
        let svidChain = try response.svidChain.map { try Certificate(derEncoded: Array($0)) }
        let caChain = try response.caChain.map { try Certificate(derEncoded: Array($0)) }
        let issued = try await SVIDVerifier(trustDomain: identity.trustDomain, roots: roots).verify(chain: svidChain)
        guard issued == identity.spiffeID, svidChain.first?.publicKey == Certificate.PublicKey(svidKey.publicKey),
              caKey == nil || caChain.first?.publicKey == caKey.map({ Certificate.PublicKey($0.publicKey) })
        else { throw PollerError("Core answered the renewal with certificates for another identity or key") }
        try identity.replace(svidChain: svidChain, svidKey: svidKey, ca: caKey.map { (caChain, $0) }, roots: roots)
        logger.notice("renewed the poller's SVID\(caKey == nil ? "" : " and CA")", metadata: [
            "svid_until": "\(svidChain[0].notValidAfter.formatted(.iso8601))",
        ])
    }

    static func halfLife(of certificate: Certificate) -> Date {
        certificate.notValidBefore.addingTimeInterval(certificate.notValidAfter.timeIntervalSince(certificate.notValidBefore) / 2)
    }
}
