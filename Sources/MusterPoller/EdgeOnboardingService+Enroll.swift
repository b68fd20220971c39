import Crypto
import Foundation
import MusterConcurrency
import MusterDatabase
import MusterGRPC
import MusterIdentity
import MusterProto

/// How the poller admits self-enrollment requests.
public struct EnrollmentSettings: Sendable {
    /// One request per source address per this many seconds.
    public var interval: Int64
    /// Most requests pending (relayed, waiting for an operator) at once.
    public var maxPending: Int

    public init(interval: Int64 = 60, maxPending: Int = 100) {
        self.interval = interval
        self.maxPending = maxPending
    }
}

/// When each source address last made an enrollment request; bounded, so a flood of addresses cannot grow it
/// without limit (entries older than the interval are dropped first).
final class EnrollmentLimiter: Sendable {
    let interval: Int64
    private let seen = LockedValue<[String: Int64]>([:])
    static let maxTracked = 10_000

    init(interval: Int64) { self.interval = interval }

    /// Nil when `address` may make a request now (and records it), else the seconds until it may.
    func take(_ address: String, at now: Int64) -> Int64? {
        seen.withLock { seen in
            if let last = seen[address], now - last < interval * 1000 {
                return max(1, (interval * 1000 - (now - last) + 999) / 1000)
            }
            if seen.count >= Self.maxTracked {
                seen = seen.filter { now - $0.value < interval * 1000 }
                guard seen.count < Self.maxTracked else { return interval }
            }
            seen[address] = now
            return nil
        }
    }
}

extension EdgeOnboardingService {
    static let unknownEnrollment = RPCError(code: .notFound, message: "no enrollment request with this id and handle")

    /// A new self-enrollment request: checked field by field, limited per source address and in number, stored,
    /// then relayed to Core by the outbox. The answer carries the request's handle (only its hash is kept).
    func enroll(_ request: Muster_Onboarding_V1_EnrollRequest, from address: String) async throws
        -> Muster_Onboarding_V1_EnrollResponse
    {
        guard !standing.isRevoked else { throw PollerStanding.refusal }
        guard request.componentType == "agent" || request.componentType == "checker" else {
            throw RPCError(code: .invalidArgument, message: "component_type must be agent or checker")
        }
        if !request.requestedName.isEmpty {
            do { try MusterIDs.checkName(request.requestedName) } catch {
                throw RPCError(code: .invalidArgument, message: "requested_name: \(error.description)")
            }
        }
        let facts = EnrollmentFacts(request.claimed)
        do { try facts.validate() } catch { throw RPCError(code: .invalidArgument, message: error.message) }
        let fingerprint: String
        do { fingerprint = try KeyFingerprint.ofCSR(Array(request.csr)) } catch {
            throw RPCError(code: .invalidArgument, message: "csr refused: \(error.message)")
        }
        let now = Clock.nowMillis()
        if let wait = limiter.take(address, at: now) {
            throw RPCError(
                code: .resourceExhausted,
                message:
                    "one enrollment request per \(limiter.interval) s from \(address); retry in \(wait) s "
                    + "(an interrupted enroll resumes its request without a new one)")
        }
        let handle = ByteEncoding.base64URL(ByteEncoding.randomBytes(32))
        let claimed = (try? JSONEncoder().encode(facts)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
        let record = CachedEnrollment(
            id: UUID().uuidString.lowercased(), handleHash: Self.handleHash(handle),
            componentType: request.componentType, requestedName: request.requestedName, claimed: claimed,
            csr: request.csr, keyFingerprint: fingerprint, sourceAddress: address, receivedAt: now, state: "pending")
        guard try await store({ try await cache.insertEnrollment(record, cap: enrollmentSettings.maxPending) }) else {
            throw RPCError(
                code: .resourceExhausted,
                message:
                    "this poller already has \(enrollmentSettings.maxPending) enrollment requests waiting for an "
                    + "operator; try again later")
        }
        outbox.ring()
        logger.notice(
            "enrollment requested",
            metadata: [
                "enrollment": "\(record.id)", "from": "\(address)", "machine_id": "\(facts.machineID)",
                "key_fingerprint": "\(fingerprint)",
            ])
        var response = Muster_Onboarding_V1_EnrollResponse()
        response.requestID = record.id
        response.handle = handle
        response.keyFingerprint = fingerprint
        return response
    }

    /// A poll: the handle must match and the CSR must be signed by the enrolled key. Once approved, the answer
    /// is the SVID for exactly that key (again, if the agent lost the first answer).
    func enrollmentStatus(_ request: Muster_Onboarding_V1_EnrollmentStatusRequest, from address: String) async throws
        -> Muster_Onboarding_V1_EnrollmentStatusResponse
    {
        guard !standing.isRevoked else { throw PollerStanding.refusal }
        guard UUID(uuidString: request.requestID) != nil,
            let held = try await store({ try await cache.enrollment(id: request.requestID.lowercased()) }),
            ByteEncoding.constantTimeEqual(held.handleHash, Self.handleHash(request.handle))
        else { throw Self.unknownEnrollment }
        let proof: String
        do { proof = try KeyFingerprint.ofCSR(Array(request.csr)) } catch {
            throw RPCError(code: .invalidArgument, message: "csr refused: \(error.message)")
        }
        guard proof == held.keyFingerprint else {
            logger.warning(
                "enrollment poll with another key refused",
                metadata: ["enrollment": "\(held.id)", "from": "\(address)"])
            throw RPCError(
                code: .permissionDenied, message: "this CSR's key is not the key the request was made with")
        }
        var response = Muster_Onboarding_V1_EnrollmentStatusResponse()
        let now = Clock.nowMillis()
        switch held.state {
        case "pending":
            let expired = now - held.receivedAt > 24 * 3600 * 1000 + 5 * 60 * 1000
            response.status = expired ? "expired" : "pending"
        case "denied", "expired":
            response.status = held.state
            response.reason = held.reason ?? ""
        case "approved", "activated":
            guard let packageID = held.packageID,
                let package = try await store({ try await cache.package(id: packageID) }),
                let spiffeID = try? SPIFFEID(parsing: package.spiffeID), identity.serves(spiffeID)
            else { throw Self.unknownEnrollment }
            let key = try Self.publicKey(fromCSR: held.csr)
            let (leaf, chain) = try issue(spiffeID, key: key)
            let serial = "\(leaf.serialText)"
            let notAfter = Clock.millis(leaf.notValidAfter)
            // The first collection redeems the package; a later one (or one that lost a race to a concurrent
            // first) is recorded like a renewal. Nil from both: revoked or expired meanwhile.
            var collected =
                held.state == "approved"
                ? try await store {
                    try await cache.collectEnrollment(
                        id: held.id, serial: serial, notAfter: notAfter, from: address, at: now)
                } : nil
            if collected == nil {
                collected = try await store {
                    try await cache.recollectEnrollment(id: held.id, serial: serial, notAfter: notAfter, at: now)
                }
            }
            guard collected != nil else {
                response.status = "denied"
                response.reason = "the approved identity was revoked or expired before it was collected"
                return response
            }
            if held.state == "approved" { outbox.ring() }
            logger.notice(
                "enrolled agent collected its identity",
                metadata: [
                    "enrollment": "\(held.id)", "spiffe_id": "\(spiffeID)", "from": "\(address)", "serial": "\(serial)",
                ])
            response.status = "approved"
            response.spiffeID = spiffeID.description
            response.svidChain = chain
            response.bundle = identity.rootsDER
            response.selectors = package.selectorList
        default:
            throw Self.unknownEnrollment
        }
        return response
    }

    static func handleHash(_ handle: String) -> String { ByteEncoding.hex(SHA256.hash(data: Data(handle.utf8))) }
}
