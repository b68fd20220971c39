import Foundation
import MusterEdge
import MusterGRPC
import MusterIdentity
import MusterProto
import MusterStore
import SwiftASN1
import X509

/// `muster.onboarding.v1.CoreOnboarding` on Core's gRPC port: `AttestPoller` (join token, no client
/// certificate) and, for an active poller's root-issued SVID, `WatchPackages`, `ReportActivations`, `RenewPoller`.
public struct CoreOnboardingService: GRPCService {
    let packages: PackageService

    public init(packages: PackageService) { self.packages = packages }

    public func register(with router: inout GRPCRouter) {
        registerWatch(with: &router)
        registerRelay(with: &router)
        router.unary("/muster.onboarding.v1.CoreOnboarding/AttestPoller", Muster_Onboarding_V1_AttestPollerRequest.self)
        { request, context in
            try await Self.mapped {
                let result = try await packages.attestPoller(
                    token: request.joinToken, svidCSR: Array(request.svidCsr), caCSR: Array(request.caCsr),
                    advertise: request.advertiseAddress, from: context.peerIP
                )
                var response = Muster_Onboarding_V1_AttestPollerResponse()
                response.spiffeID = result.package.spiffeID
                response.trustDomain = packages.identity.trustDomain
                response.svidChain = try result.svidChain.map { try $0.derData() }
                response.caChain = try result.caChain.map { try $0.derData() }
                response.bundle = try packages.identity.bundle.roots.map { try $0.derData() }
                return response
            }
        }
    }

    func registerWatch(with router: inout GRPCRouter) {
        let policy = Self.pollerPolicy(trustDomain: packages.identity.trustDomain)
        router.serverStreaming(
            "/muster.onboarding.v1.CoreOnboarding/WatchPackages", Muster_Onboarding_V1_WatchPackagesRequest.self,
            Muster_Onboarding_V1_PackageUpdate.self, policy: policy
        ) { request, writer, context in
            guard request.cursor >= 0 else {
                throw RPCError(code: .invalidArgument, message: "cursor must not be negative")
            }
            try await Self.mapped {
                let poller = try await activePoller(context)
                try await packages.watch(poller: poller, from: request.cursor, address: context.peerIP) {
                    cursor, change in
                    var update = Muster_Onboarding_V1_PackageUpdate()
                    update.cursor = cursor
                    switch change {
                    case .pending(let record):
                        update.pending = Self.pending(record, withTokenHash: true)
                    case .decision(let enrollment, let package):
                        var decision = Muster_Onboarding_V1_EnrollmentDecision()
                        decision.requestID = enrollment.id
                        decision.status = enrollment.status.rawValue
                        decision.reason = enrollment.decisionReason ?? ""
                        decision.keyFingerprint = enrollment.keyFingerprint
                        if let package { decision.package = Self.pending(package, withTokenHash: false) }
                        update.decision = decision
                    case .revoked(let record):
                        var revoked = Muster_Onboarding_V1_Revocation()
                        revoked.packageID = record.id
                        revoked.spiffeID = record.spiffeID
                        update.revoked = revoked
                    case .live:
                        break  // the cursor alone, no change: the stream has caught up
                    }
                    try await writer.write(update)
                }
            }
        }
    }

    func registerRelay(with router: inout GRPCRouter) {
        let policy = Self.pollerPolicy(trustDomain: packages.identity.trustDomain)
        router.unary(
            "/muster.onboarding.v1.CoreOnboarding/ReportActivations",
            Muster_Onboarding_V1_ReportActivationsRequest.self,
            policy: policy
        ) { request, context in
            guard request.activations.count <= PackageService.maxActivationsPerReport,
                request.refusals.count <= PackageService.maxActivationsPerReport
            else {
                throw RPCError(
                    code: .invalidArgument,
                    message: "at most \(PackageService.maxActivationsPerReport) activations and refusals per report")
            }
            // An empty report is the poller's heartbeat: it only refreshes its last contact, so a verdict Core
            // keeps (PollerStandings) may admit it without a read of the store.
            let heartbeat = request.activations.isEmpty && request.refusals.isEmpty
            let poller = try await Self.mapped { try await activePoller(context, heartbeat: heartbeat) }
            let activations = request.activations.map {
                ReportedActivation(
                    packageID: $0.packageID, spiffeID: $0.spiffeID, sourceAddress: $0.sourceAddress,
                    activatedAt: $0.activatedAtUnixMs, serial: $0.serial)
            }
            let refusals = request.refusals.map {
                ReportedRefusal(
                    packageID: $0.packageID, reason: $0.reason, sourceAddress: $0.sourceAddress, at: $0.atUnixMs)
            }
            var response = Muster_Onboarding_V1_ReportActivationsResponse()
            response.accepted = try await Self.mapped {
                try await packages.auditRefusals(refusals, poller: poller)
                return try await packages.reportActivations(activations, poller: poller, from: context.peerIP)
            }
            return response
        }
        router.unary(
            "/muster.onboarding.v1.CoreOnboarding/RelayEnrollments", Muster_Onboarding_V1_RelayEnrollmentsRequest.self,
            policy: policy
        ) { request, context in
            guard request.enrollments.count <= PackageService.maxEnrollmentsPerRelay else {
                throw RPCError(
                    code: .invalidArgument,
                    message: "at most \(PackageService.maxEnrollmentsPerRelay) enrollments per relay")
            }
            let items = request.enrollments.map {
                RelayedEnrollment(
                    id: $0.id, componentType: $0.componentType, requestedName: $0.requestedName,
                    facts: EnrollmentFacts($0.claimed), csr: Array($0.csr), sourceAddress: $0.sourceAddress,
                    receivedAt: $0.receivedAtUnixMs)
            }
            var response = Muster_Onboarding_V1_RelayEnrollmentsResponse()
            response.accepted = try await Self.mapped {
                let poller = try await activePoller(context)
                return try await packages.relayEnrollments(items, poller: poller, from: context.peerIP)
            }
            return response
        }
        router.unary(
            "/muster.onboarding.v1.CoreOnboarding/RenewPoller", Muster_Onboarding_V1_RenewPollerRequest.self,
            policy: policy
        ) { request, context in
            let renewed = try await Self.mapped {
                let poller = try await activePoller(context)
                return try await packages.renewPoller(
                    poller, svidCSR: Array(request.svidCsr), caCSR: Array(request.caCsr), from: context.peerIP)
            }
            var response = Muster_Onboarding_V1_RenewPollerResponse()
            response.svidChain = try renewed.svid.map { try $0.derData() }
            response.caChain = try renewed.ca.map { try $0.derData() }
            response.bundle = try packages.identity.bundle.roots.map { try $0.derData() }
            return response
        }
    }

    /// A package as its poller caches it; an enrollment's package goes without a token hash (none can redeem it).
    static func pending(_ record: PackageRecord, withTokenHash: Bool) -> Muster_Onboarding_V1_PendingPackage {
        var pending = Muster_Onboarding_V1_PendingPackage()
        pending.id = record.id
        pending.componentType = record.componentType.rawValue
        pending.name = record.name
        pending.spiffeID = record.spiffeID
        if withTokenHash { pending.tokenHash = Data(ByteEncoding.bytes(hex: record.tokenHash) ?? []) }
        pending.expiresAtUnixMs = record.expiresAt
        pending.selectors = record.selectorList
        return pending
    }

    /// Only a poller's own SVID, issued straight by the root (never by a poller's CA), may use the poller
    /// methods; the poller's name comes from that verified SVID, never from the request.
    static func pollerPolicy(trustDomain: String) -> PeerPolicy {
        PeerPolicy { peer in
            guard let peer else {
                return RPCError(code: .unauthenticated, message: "this method needs the poller's X.509-SVID")
            }
            guard peer.spiffeID.trustDomain == trustDomain, case .poller = peer.musterID else {
                return RPCError(code: .permissionDenied, message: "\(peer.spiffeID) is not a poller")
            }
            guard peer.isRootIssued else {
                return RPCError(code: .permissionDenied, message: "a poller SVID must be issued by the root CA")
            }
            return nil
        }
    }

    /// The active poller behind the call's verified SVID (the policy admitted only root-issued poller IDs).
    func activePoller(_ context: ServerContext, heartbeat: Bool = false) async throws -> String {
        guard let peer = try context.peer(), case .poller(let name) = peer.musterID else {
            throw RPCError(code: .unauthenticated, message: "this method needs the poller's X.509-SVID")
        }
        return try await packages.activePoller(
            PollerCredential(name: name, spiffeID: peer.spiffeID, serial: peer.serial), from: context.peerIP,
            heartbeat: heartbeat)
    }

    /// Runs a handler body so that a domain failure (or any failure under it) leaves as its gRPC status; a
    /// status the handler chose passes through. The one place this service maps errors.
    static func mapped<R: Sendable>(_ body: () async throws -> R) async throws -> R {
        do {
            return try await body()
        } catch let error as RPCError {
            throw error
        } catch {
            throw RPCError(DomainError(error))
        }
    }
}

extension PackageService {
    /// Audits a call Core's gRPC server refused before its handler ran (a chain that does not verify, or an ID
    /// the method does not admit), under the refusal budget of the caller's address.
    public func auditRefusedCall(_ refusal: CallRefusal) {
        auditor.recordDetached(
            AuditRecord(
                actor: "anonymous", sourceIP: refusal.peerAddress, action: "grpc.refused", targetType: "method",
                targetID: refusal.method,
                outcome: "denied", reason: TextRules.printable(refusal.reason, limit: 300),
                details: refusal.spiffeID.map { ["spiffe_id": $0.description, "code": "\(refusal.code)"] } ?? [
                    "code": "\(refusal.code)"
                ]
            ), source: refusal.peerAddress)
    }
}
