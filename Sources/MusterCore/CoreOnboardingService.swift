import Foundation
import MusterGRPC
import MusterIdentity
import MusterProto
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
        router.unary("/muster.onboarding.v1.CoreOnboarding/AttestPoller", Muster_Onboarding_V1_AttestPollerRequest.self) { request, context in
            do {
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
            } catch let error as RPCError {
                throw error
            } catch let error as APIError where error.code == .unavailable {
                throw RPCError(code: .unavailable, message: error.message)
            } catch let error as IdentityError {
                // The request itself cannot be served (e.g. a key the CA cannot certify): retrying will not help.
                throw RPCError(code: .invalidArgument, message: "Core cannot issue for this request: \(error.message)")
            } catch {
                // Redemption, certificate records and the poller's state commit together, so a failure
                // here leaves the token unspent and the poller may retry.
                throw RPCError(code: .unavailable, message: "Core cannot complete the attestation now; the token was not spent, retry")
            }
        }
    }

    func registerWatch(with router: inout GRPCRouter) {
        let policy = PackageService.pollerPolicy(trustDomain: packages.identity.trustDomain)
        router.serverStreaming("/muster.onboarding.v1.CoreOnboarding/WatchPackages", Muster_Onboarding_V1_WatchPackagesRequest.self,
                               Muster_Onboarding_V1_PackageUpdate.self, policy: policy) { request, writer, context in
            guard request.cursor >= 0 else { throw RPCError(code: .invalidArgument, message: "cursor must not be negative") }
            let poller = try await packages.activePoller(for: try context.peer(), from: context.peerIP)
            try await packages.watch(poller: poller, from: request.cursor) { cursor, change in
                var update = Muster_Onboarding_V1_PackageUpdate()
                update.cursor = cursor
                switch change {
                case .pending(let record):
                    var pending = Muster_Onboarding_V1_PendingPackage()
                    pending.id = record.id
                    pending.componentType = record.componentType.rawValue
                    pending.name = record.name
                    pending.spiffeID = record.spiffeID
                    pending.tokenHash = Data(ByteEncoding.bytes(hex: record.tokenHash) ?? [])
                    pending.expiresAtUnixMs = record.expiresAt
                    pending.selectors = record.selectorList
                    update.pending = pending
                case .revoked(let record):
                    var revoked = Muster_Onboarding_V1_Revocation()
                    revoked.packageID = record.id
                    revoked.spiffeID = record.spiffeID
                    update.revoked = revoked
                }
                try await writer.write(update)
            }
        }
    }

    func registerRelay(with router: inout GRPCRouter) {
        let policy = PackageService.pollerPolicy(trustDomain: packages.identity.trustDomain)
        router.unary("/muster.onboarding.v1.CoreOnboarding/ReportActivations", Muster_Onboarding_V1_ReportActivationsRequest.self,
                     policy: policy) { request, context in
            guard request.activations.count <= PackageService.maxActivationsPerReport,
                  request.refusals.count <= PackageService.maxActivationsPerReport
            else {
                throw RPCError(code: .invalidArgument, message: "at most \(PackageService.maxActivationsPerReport) activations and refusals per report")
            }
            // An empty report is the poller's heartbeat: it only refreshes its last contact.
            let poller = try await packages.activePoller(for: try context.peer(), from: context.peerIP)
            let activations = request.activations.map {
                ReportedActivation(packageID: $0.packageID, spiffeID: $0.spiffeID, sourceAddress: $0.sourceAddress,
                                   activatedAt: $0.activatedAtUnixMs, serial: $0.serial)
            }
            let refusals = request.refusals.map {
                ReportedRefusal(packageID: $0.packageID, reason: $0.reason, sourceAddress: $0.sourceAddress, at: $0.atUnixMs)
            }
            var response = Muster_Onboarding_V1_ReportActivationsResponse()
            response.accepted = try await Self.unavailableOnStoreFailure {
                try await packages.auditRefusals(refusals, poller: poller)
                return try await packages.reportActivations(activations, poller: poller, from: context.peerIP)
            }
            return response
        }
        router.unary("/muster.onboarding.v1.CoreOnboarding/RenewPoller", Muster_Onboarding_V1_RenewPollerRequest.self, policy: policy) { request, context in
            let poller = try await packages.activePoller(for: try context.peer(), from: context.peerIP)
            let renewed = try await Self.unavailableOnStoreFailure {
                try await packages.renewPoller(poller, svidCSR: Array(request.svidCsr), caCSR: Array(request.caCsr), from: context.peerIP)
            }
            var response = Muster_Onboarding_V1_RenewPollerResponse()
            response.svidChain = try renewed.svid.map { try $0.derData() }
            response.caChain = try renewed.ca.map { try $0.derData() }
            response.bundle = try packages.identity.bundle.roots.map { try $0.derData() }
            return response
        }
    }

    /// Store failures become UNAVAILABLE (the poller retries); refusals pass through as they are.
    static func unavailableOnStoreFailure<R: Sendable>(_ body: () async throws -> R) async throws -> R {
        do {
            return try await body()
        } catch let error as RPCError {
            throw error
        } catch {
            throw RPCError(code: .unavailable, message: "Core cannot record this now; retry")
        }
    }

}
