import Foundation
import MusterIdentity
import MusterStore
import SwiftASN1
import X509

/// What a successful poller attestation hands back.
public struct PollerAttestation: Sendable {
    public let package: PackageRecord
    public let svidChain: [Certificate]
    public let caChain: [Certificate]
}

extension PackageService {
    /// The one answer for every refused token, so the wire does not tell unknown from used, expired or
    /// revoked; the audit row keeps the real reason.
    static let refusedToken = DomainError(.unauthenticated, JoinToken.refusal)

    /// Redeems a poller package's join token for the poller's SVID and downstream CA. The CSRs are checked
    /// and both certificates issued before the token is spent, so a bad request never burns it; the
    /// redemption itself is one conditional update, so of any number of concurrent callers (on any replica)
    /// exactly one succeeds.
    public func attestPoller(
        token text: String, svidCSR: [UInt8], caCSR: [UInt8], advertise: String,
        from ip: String
    ) async throws -> PollerAttestation {
        try await DomainError.mapping {
            try await attest(token: text, svidCSR: svidCSR, caCSR: caCSR, advertise: advertise, from: ip)
        }
    }

    private func attest(token text: String, svidCSR: [UInt8], caCSR: [UInt8], advertise: String, from ip: String)
        async throws -> PollerAttestation
    {
        let now = Clock.nowMillis()
        guard let token = try? JoinToken(parsing: text) else {
            try await refuse(reason: "malformed token", packageID: nil, ip: ip, at: now)
        }
        // Checked here too, before the token is looked at, so a bad CSR is INVALID_ARGUMENT and never burns it.
        do {
            _ = try CSRCheck.publicKey(fromDER: svidCSR, purpose: .leaf)
            _ = try CSRCheck.publicKey(fromDER: caCSR, purpose: .certificateAuthority)
        } catch {
            throw DomainError(.invalid, "CSR refused: \(error.message)")
        }
        let advertised = try advertise.isEmpty ? nil : checkAdvertised(advertise)
        let (dnsNames, ipAddresses) = advertised.map { HostPort.subjectAltNames(host: $0.host) } ?? ([], [])
        let hash = Self.hex(token.hash)
        // Refuse spent, expired and foreign tokens before signing anything: replays cost a lookup, not two signatures.
        let pending = try await store.packageByTokenHash(hash)
        if let reason = PackageRecord.redemptionRefusal(of: pending, componentType: .poller, at: now) {
            try await refuse(reason: reason, packageID: pending?.id, ip: ip, at: now)
        }
        guard let pending, let spiffeID = try? SPIFFEID(parsing: pending.spiffeID) else {
            try await refuse(reason: "package holds no valid SPIFFE ID", packageID: pending?.id, ip: ip, at: now)
        }
        let svidChain = try await identity.authority.mintX509SVID(
            SVIDRequest(
                spiffeID: spiffeID, csrDER: svidCSR, dnsNames: dnsNames, ipAddresses: ipAddresses, ttl: leafTTL
            )
        ).chain
        let caChain = try await identity.authority.newDownstreamX509CA(
            SVIDRequest(spiffeID: spiffeID, csrDER: caCSR, ttl: pollerCATTL)
        ).chain
        let svid = svidChain[0]
        let ca = caChain[0]

        let won = try await store.redeem(
            tokenHash: hash, componentType: .poller, at: now, fromIP: ip, spiffeID: spiffeID.description,
            issued: [
                IssuedCertificate(
                    serial: "\(svid.serialText)", kind: "svid", notAfter: Clock.millis(svid.notValidAfter)),
                IssuedCertificate(serial: "\(ca.serialText)", kind: "ca", notAfter: Clock.millis(ca.notValidAfter)),
            ],
            advertise: advertised?.text,
            audit: {
                AuditRecord(
                    at: now, actor: "poller:\($0.name)", sourceIP: ip, action: "package.activate",
                    targetType: "package",
                    targetID: $0.id, details: ["svid_serial": "\(svid.serialText)", "ca_serial": "\(ca.serialText)"])
            },
            event: { Self.event("package.activated", PackageView($0, joinCommand: nil), at: now) }
        )
        guard let won else {
            let reason = try await store.reasonForFailedRedemption(tokenHash: hash, componentType: .poller, at: now)
            try await refuse(reason: reason.reason, packageID: reason.packageID, ip: ip, at: now)
        }
        events.ring()
        metrics.redemptions.increment()
        metrics.packageTransition("activated", type: .poller)
        logger.notice(
            "poller attested", metadata: ["package": "\(won.id)", "spiffe_id": "\(spiffeID)", "from": "\(ip)"])
        return PollerAttestation(package: won, svidChain: svidChain, caChain: caChain)
    }

    /// A poller's advertised address, checked before it goes into a root-signed certificate, join commands and
    /// READMEs: a hostname or IP literal and a port, and never Core's own advertised host (unless loopback, which
    /// names only the machine itself), so no poller gets a certificate that hostname-checking tools take for Core.
    func checkAdvertised(_ text: String) throws -> (host: String, port: Int, text: String) {
        let address: (host: String, port: Int, text: String)
        do {
            address = try HostPort.validateAdvertised(text)
        } catch {
            throw DomainError(.invalid, "advertise_address: \(error.message)")
        }
        if let core = try? HostPort.parse(identity.advertise), core.host.lowercased() == address.host,
            !HostPort.isLoopback(address.host)
        {
            throw DomainError(.invalid, "advertise_address: \(address.host) is Core's own address")
        }
        return address
    }

    private func refuse(reason: String, packageID: String?, ip: String, at now: Int64) async throws -> Never {
        metrics.refusedRedemptions.increment()
        await auditor.record(
            AuditRecord(
                at: now, actor: "anonymous", sourceIP: ip, action: "package.activate", targetType: "package",
                targetID: packageID, outcome: "denied", reason: reason), source: ip)
        throw Self.refusedToken
    }
}
