import Foundation
import MusterGRPC
import MusterIdentity
import MusterStore
import SQLKit

/// One change a poller's package stream carries.
public enum PollerPackageChange: Sendable {
    case pending(PackageRecord)
    case revoked(PackageRecord)
}

extension PackageService {
    /// Only a poller's own SVID, issued straight by the root (never by a poller's CA), may use the poller
    /// methods; the poller's name comes from that verified SVID, never from the request.
    public static func pollerPolicy(trustDomain: String) -> PeerPolicy {
        PeerPolicy { peer in
            guard let peer else { return RPCError(code: .unauthenticated, message: "this method needs the poller's X.509-SVID") }
            guard peer.spiffeID.trustDomain == trustDomain, case .poller = peer.musterID else {
                return RPCError(code: .permissionDenied, message: "\(peer.spiffeID) is not a poller")
            }
            guard peer.isRootIssued else {
                return RPCError(code: .permissionDenied, message: "a poller SVID must be issued by the root CA")
            }
            return nil
        }
    }

    /// The poller named by a verified peer, if Core knows it as active and issued this very certificate to it:
    /// the leaf's serial must be on record for the poller's current package and not revoked, so an SVID of a
    /// revoked poller stays dead when its name is used again.
    public func activePoller(for peer: PeerIdentity?, from ip: String) async throws -> String {
        guard let peer, case .poller(let name) = peer.musterID else {
            throw RPCError(code: .unauthenticated, message: "this method needs the poller's X.509-SVID")
        }
        guard let poller = try await store.poller(named: name), poller.status == "active", poller.spiffeID == peer.spiffeID.description else {
            throw RPCError(code: .permissionDenied, message: "poller \(name) is not active (revoked, or never attested)")
        }
        let issued = try await store.issued(serial: peer.serial)
        guard let issued, issued.kind == "svid", issued.spiffeID == peer.spiffeID.description, issued.packageID == poller.packageID,
              issued.revokedAt == nil
        else {
            let reason = issued == nil ? "not issued by Core" : (issued?.revokedAt != nil ? "revoked" : "issued to another package")
            await auditRefusedCertificate(peer: peer, reason: "SVID serial \(peer.serial) \(reason)", ip: ip)
            throw RPCError(code: .permissionDenied, message: "this SVID of poller \(name) is not current (revoked or superseded)")
        }
        try await store.touchPoller(named: name, at: Clock.nowMillis(), from: ip)
        return name
    }

    /// Audits a call Core's gRPC server refused before its handler ran (a chain that does not verify, or an ID
    /// the method does not admit), under the refusal budget of the caller's address.
    public func auditRefusedCall(_ refusal: CallRefusal) {
        auditor.recordDetached(AuditRecord(
            actor: "anonymous", sourceIP: refusal.peerAddress, action: "grpc.refused", targetType: "method", targetID: refusal.method,
            outcome: "denied", reason: TextRules.printable(refusal.reason, limit: 300),
            details: refusal.spiffeID.map { ["spiffe_id": $0.description, "code": "\(refusal.code)"] } ?? ["code": "\(refusal.code)"]
        ), source: refusal.peerAddress)
    }

    /// Audits a certificate refused at Core's poller methods (outcome `denied`, the ID it claimed, the reason).
    func auditRefusedCertificate(peer: PeerIdentity, reason: String, ip: String) async {
        await auditor.record(AuditRecord(at: Clock.nowMillis(), actor: "anonymous", sourceIP: ip, action: "grpc.refused", targetType: "poller",
                                         targetID: peer.musterID?.pollerName, outcome: "denied", reason: reason,
                                         details: ["spiffe_id": peer.spiffeID.description]), source: ip)
    }

    /// The poller's packages from `cursor` on: with cursor 0 a snapshot of its pending agent/checker packages
    /// first; then every later creation or revocation among them, in event order. A pending package
    /// moves Created → Delivered (via poller) as it is sent. `send` gets each change with its cursor.
    public func watch(poller name: String, from cursor: Int64, send: @Sendable (Int64, PollerPackageChange) async throws -> Void) async throws {
        var cursor = cursor
        if cursor == 0 {
            cursor = try await store.lastEventID()
            for record in try await store.pendingPackages(poller: name, at: Clock.nowMillis()) {
                try await markPulled(record, by: name)
                try await send(cursor, .pending(record))
            }
        }
        while !Task.isCancelled {
            for event in try await events.next(after: cursor) {
                cursor = event.id ?? cursor
                // Expiry is not sent: the poller expires packages by their own expiry time, and a token it redeemed
                // before that time (perhaps while Core was away) must not be undone by Core's reaper.
                guard ["package.created", "package.revoked"].contains(event.type),
                      let record = try await store.package(id: event.subject)
                else { continue }
                if record.componentType == .poller, record.name == name, event.type == "package.revoked" {
                    throw RPCError(code: .permissionDenied, message: "poller \(name) was revoked")
                }
                guard record.pollerName == name else { continue }
                if event.type == "package.created" {
                    guard record.status == .created || record.status == .delivered else { continue }
                    // Marked first: a resumed stream re-sends Delivered packages, so nothing is lost if the send fails.
                    try await markPulled(record, by: name)
                    try await send(cursor, .pending(record))
                } else {
                    try await send(cursor, .revoked(record))
                }
            }
        }
    }

    func markPulled(_ record: PackageRecord, by poller: String) async throws {
        guard record.status == .created else { return }
        let now = Clock.nowMillis()
        let audit = AuditRecord(at: now, actor: "poller:\(poller)", sourceIP: nil, action: "package.pull", targetType: "package", targetID: record.id)
        do {
            _ = try await transition(
                id: record.id, from: [.created], event: "package.delivered", at: now, audit: audit,
                set: ["status": SQLBind(PackageStatus.delivered.rawValue), "delivered_at": SQLBind(now), "delivered_via": SQLBind("poller")]
            )
        } catch let error as APIError where error.code == .conflict {
            // Downloaded or revoked meanwhile: nothing to move.
        }
    }
}
