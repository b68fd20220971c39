import Foundation
import MusterConcurrency
import MusterIdentity

/// Verifies a server's callers: every presented chain goes through `SVIDVerifier` against the server's current
/// trust roots. A result is kept per connection (its auth context, held so that its address cannot be reused) and
/// roots generation until the path's first certificate expires (refusals for a minute), so a connection's chain is
/// verified once, and a later call on it costs one lookup: no certificate text is copied out of gRPC core.
final class PeerVerifier: Sendable {
    private struct Entry {
        let context: AuthContext
        let generation: UInt64
        let result: Result<PeerIdentity, RPCError>?
        let validUntil: Date
        var lastUsed: Date
    }

    /// The connections seen lately. Entries unused for `idleEviction` are swept out at most once per that
    /// interval, so a closed connection's context is freed within two intervals, and a full table clears.
    private struct Table {
        var entries: [UInt: Entry] = [:]
        var lastSweep: Date
        var verifications = 0
    }

    private let certificates: ServerCertificates?
    private let table: LockedValue<Table>
    private let limit: Int

    /// How long an entry is kept without a call on its connection: longer than any poller's report interval, so
    /// the connections in use stay.
    static let idleEviction: TimeInterval = 120

    init(certificates: ServerCertificates?, limit: Int = 16_384, now: Date = Date()) {
        self.certificates = certificates
        self.limit = limit
        self.table = LockedValue(Table(lastSweep: now))
    }

    /// How many chains this verifier has checked (not answered from its table): for tests.
    var chainsVerified: Int { table.withLock { $0.verifications } }

    /// How many connections the table holds: for tests.
    var connectionsHeld: Int { table.withLock { $0.entries.count } }

    /// nil when the caller presented no certificate.
    func identity(of call: ServerCall, now: Date = Date()) async -> Result<PeerIdentity, RPCError>? {
        guard let context = call.authContext else { return nil }
        return await identity(of: context, now: now)
    }

    func identity(of context: AuthContext, now: Date = Date()) async -> Result<PeerIdentity, RPCError>? {
        guard let certificates else { return context.peerCertificateChainPEM.map { _ in Self.unverifiable } }
        let current = certificates.current
        let key = context.key
        let held = table.withLock { table -> Entry? in
            guard var entry = table.entries[key], entry.generation == current.generation, now < entry.validUntil
            else { return nil }
            entry.lastUsed = now
            table.entries[key] = entry
            return entry
        }
        if let held { return held.result }
        let result: Result<PeerIdentity, RPCError>?
        var validUntil = now.addingTimeInterval(60)
        let pem = context.peerCertificateChainPEM
        if let pem, let trust = current.verifier {
            (result, validUntil) = await Self.verify(pem, with: trust, now: now)
        } else {
            result = pem.map { _ in Self.unverifiable }
        }
        let entry = Entry(
            context: context, generation: current.generation, result: result, validUntil: validUntil, lastUsed: now)
        table.withLock { table in
            if pem != nil { table.verifications += 1 }
            if now.timeIntervalSince(table.lastSweep) >= Self.idleEviction
                || (table.entries.count >= limit && table.entries[key] == nil)
            {
                Self.sweep(&table, now: now, limit: limit)
            }
            table.entries[key] = entry
        }
        return result
    }

    /// Drops the entries unused for `idleEviction` (and everything, if the table is still full), releasing their
    /// auth contexts.
    func sweep(now: Date = Date()) { table.withLock { Self.sweep(&$0, now: now, limit: limit) } }

    private static func sweep(_ table: inout Table, now: Date, limit: Int) {
        table.entries = table.entries.filter { now.timeIntervalSince($0.value.lastUsed) < idleEviction }
        table.lastSweep = now
        if table.entries.count >= limit { table.entries.removeAll(keepingCapacity: true) }
    }

    private static let unverifiable: Result<PeerIdentity, RPCError> = .failure(
        RPCError(code: .unauthenticated, message: "this server does not verify client certificates"))

    private static func verify(_ pem: String, with trust: SVIDVerifier, now: Date) async -> (
        Result<PeerIdentity, RPCError>, Date
    ) {
        let refusedUntil = now.addingTimeInterval(60)
        do {
            let verified = try await trust.verify(chain: try PeerIdentity.presented(pemChain: pem), at: now)
            return (.success(PeerIdentity(verified: verified)), verified.path.map(\.notValidAfter).min() ?? now)
        } catch let error as RPCError {
            return (.failure(error), refusedUntil)
        } catch let error as IdentityError {
            return (.failure(PeerIdentity.refusal(error)), refusedUntil)
        } catch {
            let refusal = RPCError(
                code: .unauthenticated, message: "the peer's certificate chain could not be verified")
            return (.failure(refusal), refusedUntil)
        }
    }
}
