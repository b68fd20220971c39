import Crypto
import Foundation
import MusterConcurrency
import MusterEdge
import MusterGRPC
import MusterIdentity
import MusterProto
import X509

/// Self-enrollment: no token. The key is made here and never leaves the host; the request (facts and a CSR)
/// goes to a poller pinned by the CA pin; the agent waits for an operator's approval at Core, polling the
/// poller with the request's handle and a fresh CSR from the same key, and receives an SVID for that key.
/// `DIR/enrollment/` (0700) keeps the key and the request, so an interrupted enroll resumes the same request.
public enum AgentEnrollment {
    public struct Options: Sendable {
        public var poller: String
        public var caPin: String
        public var componentType: String
        public var name: String?
        /// The longest wait from the request's first submission (24 h at most).
        public var timeout: Duration
        public var machineIDFile: String

        public init(
            poller: String, caPin: String, componentType: String = "agent", name: String? = nil,
            timeout: Duration = .seconds(24 * 3600), machineIDFile: String = "/etc/machine-id"
        ) {
            self.poller = poller
            self.caPin = caPin
            self.componentType = componentType
            self.name = name
            self.timeout = timeout
            self.machineIDFile = machineIDFile
        }
    }

    /// What the installer is shown while waiting.
    public enum Progress: Sendable {
        case submitted(requestID: String, fingerprint: String, poller: String)
        case resumed(requestID: String, fingerprint: String)
        case waiting(requestID: String, fingerprint: String, state: String, elapsed: Duration)
        case retrying(String)
    }

    /// The request in progress, as `DIR/enrollment/request.json` keeps it (0600; the handle is a secret).
    struct Pending: Codable, Sendable {
        var requestID: String
        var handle: String
        var poller: String
        var pollerName: String
        var caPin: String
        var componentType: String
        var keyFingerprint: String
        var startedAt: Date

        enum CodingKeys: String, CodingKey {
            case handle, poller
            case requestID = "request_id"
            case pollerName = "poller_name"
            case caPin = "ca_pin"
            case componentType = "component_type"
            case keyFingerprint = "key_fingerprint"
            case startedAt = "started_at"
        }
    }

    static func directory(_ state: AgentState) -> String { state.directory + "/enrollment" }

    /// Enrolls (or resumes the enrollment in `state`) and writes the identity as a join does; returns its ID.
    public static func enroll(
        _ options: Options, state: AgentState, progress: @escaping @Sendable (Progress) -> Void
    ) async throws -> SPIFFEID {
        let pin: String
        do { pin = try CAPin.parse(options.caPin) } catch { throw AgentError("--ca-pin: \(error.message)") }
        guard let address = try? HostPort.parse(options.poller), !address.host.isEmpty, address.port > 0 else {
            throw AgentError("--poller must be host:port, got '\(options.poller)'")
        }
        let key = try loadOrMakeKey(state)
        var pending: Pending
        if let resumed = try loadPending(state) {
            guard resumed.poller == options.poller, resumed.caPin == pin else {
                throw AgentError(
                    "\(directory(state)) holds a request to \(resumed.poller); finish it with the same --poller and "
                        + "--ca-pin, or remove \(directory(state)) to start over")
            }
            pending = resumed
            progress(.resumed(requestID: resumed.requestID, fingerprint: resumed.keyFingerprint))
        } else {
            let facts = try MachineFacts.gather(machineIDFile: options.machineIDFile)
            pending = try await submit(options, facts: facts, key: key, pin: pin, state: state, progress: progress)
            progress(
                .submitted(
                    requestID: pending.requestID, fingerprint: pending.keyFingerprint, poller: pending.pollerName))
        }
        let deadline = pending.startedAt.addingTimeInterval(TimeInterval(options.timeout.components.seconds))
        // A poll is one small call; every 10 s at most keeps the wait after an approval short.
        var backoff = Backoff(cap: 10)
        var lastState = ""
        while true {
            let elapsed = Duration.seconds(Int64(max(0, Date().timeIntervalSince(pending.startedAt))))
            if Date() >= deadline {
                throw AgentError(
                    "enrollment \(pending.requestID) expired: no decision within \(format(options.timeout)); "
                        + "remove \(directory(state)) and enroll again",
                    exitCode: 5)
            }
            let answer: Muster_Onboarding_V1_EnrollmentStatusResponse
            do {
                answer = try await poll(pending, key: key)
            } catch let error as RPCError where error.code == .unavailable || error.code == .deadlineExceeded {
                progress(.retrying("the poller at \(pending.poller) does not answer (\(error.message)); retrying"))
                try await Task.sleep(for: backoff.next())
                continue
            } catch let error as RPCError where error.code == .notFound {
                throw AgentError(
                    "the poller no longer knows request \(pending.requestID); remove \(directory(state)) and enroll again"
                )
            } catch let error as RPCError {
                throw AgentError("the poller refused the poll: \(error.message) (\(error.code))")
            }
            switch answer.status {
            case "approved":
                return try await finish(answer, pending: pending, key: key, state: state)
            case "denied":
                throw AgentError(
                    "enrollment \(pending.requestID) was denied: \(answer.reason.isEmpty ? "no reason given" : answer.reason)"
                )
            case "expired":
                throw AgentError(
                    "enrollment \(pending.requestID) expired before an operator decided; remove \(directory(state)) "
                        + "and enroll again",
                    exitCode: 5)
            default:
                if answer.status != lastState { backoff.reset() }
                lastState = answer.status
                progress(
                    .waiting(
                        requestID: pending.requestID, fingerprint: pending.keyFingerprint, state: answer.status,
                        elapsed: elapsed))
                try await Task.sleep(for: min(backoff.next(), .seconds(max(1, Int64(deadline.timeIntervalSinceNow)))))
            }
        }
    }

    /// Sends the request; retries while the poller is unreachable or rate-limits this address.
    static func submit(
        _ options: Options, facts: EnrollmentFacts, key: P256.Signing.PrivateKey, pin: String, state: AgentState,
        progress: @Sendable (Progress) -> Void
    ) async throws -> Pending {
        var request = Muster_Onboarding_V1_EnrollRequest()
        request.componentType = options.componentType
        request.requestedName = options.name ?? ""
        request.claimed = facts.proto
        request.csr = Data(try CSRBuilder.make(key: key, label: "muster-agent"))
        let seen = LockedValue<String?>(nil)
        let channel = try GRPCChannel(
            target: options.poller,
            security: .tls(ClientTLS(trust: .pin(pin), trustDomain: nil, serverPolicy: anyPoller(seen))))
        let started = Date()
        var backoff = Backoff(cap: 30)
        while true {
            do {
                let response = try await channel.unary(
                    "/muster.onboarding.v1.EdgeOnboarding/Enroll", request,
                    as: Muster_Onboarding_V1_EnrollResponse.self,
                    options: CallOptions(timeout: .seconds(30)))
                guard let pollerName = seen.withLock({ $0 }) else {
                    throw AgentError("the poller answered without presenting its SVID")
                }
                let fingerprint = KeyFingerprint.of(Certificate.PublicKey(key.publicKey))
                guard response.keyFingerprint == fingerprint else {
                    throw AgentError("the poller computed another fingerprint for this key; refusing to go on")
                }
                let pending = Pending(
                    requestID: response.requestID, handle: response.handle, poller: options.poller,
                    pollerName: pollerName, caPin: pin, componentType: options.componentType,
                    keyFingerprint: fingerprint, startedAt: started)
                try savePending(pending, state)
                return pending
            } catch let error as RPCError where error.code == .unavailable || error.code == .resourceExhausted {
                if Date().timeIntervalSince(started) > TimeInterval(options.timeout.components.seconds) {
                    throw AgentError("the poller did not take the request: \(error.message)", exitCode: 5)
                }
                let wait = error.code == .resourceExhausted ? retryTime(in: error.message) : backoff.next()
                progress(.retrying("\(error.message) — retrying in \(format(wait))"))
                try await Task.sleep(for: wait)
            } catch let error as RPCError {
                throw AgentError("the poller refused the request: \(error.message) (\(error.code))")
            }
        }
    }

    static func poll(_ pending: Pending, key: P256.Signing.PrivateKey) async throws
        -> Muster_Onboarding_V1_EnrollmentStatusResponse
    {
        var request = Muster_Onboarding_V1_EnrollmentStatusRequest()
        request.requestID = pending.requestID
        request.handle = pending.handle
        request.csr = Data(try CSRBuilder.make(key: key, label: "muster-agent"))
        let channel = try GRPCChannel(
            target: pending.poller,
            security: .tls(
                ClientTLS(
                    trust: .pin(pending.caPin), trustDomain: nil,
                    serverPolicy: AgentOnboarding.pollerPolicy(name: pending.pollerName, trustDomain: nil))))
        return try await channel.unary(
            "/muster.onboarding.v1.EdgeOnboarding/EnrollmentStatus", request,
            as: Muster_Onboarding_V1_EnrollmentStatusResponse.self, options: CallOptions(timeout: .seconds(30)))
    }

    /// Checks the SVID (pinned root, Muster's path rule, our key, an ID under the poller we enrolled with),
    /// stores it as the agent's identity and removes the enrollment state.
    static func finish(
        _ answer: Muster_Onboarding_V1_EnrollmentStatusResponse, pending: Pending, key: P256.Signing.PrivateKey,
        state: AgentState
    ) async throws -> SPIFFEID {
        let (id, chain, roots) = try await AgentOnboarding.accept(
            chain: answer.svidChain, bundle: answer.bundle, pin: pending.caPin, key: key)
        guard MusterID(id)?.pollerName == pending.pollerName else {
            throw AgentError("the poller issued \(id), which is not under poller \(pending.pollerName)")
        }
        if let kind = MusterID(id)?.componentKind, kind != pending.componentType {
            throw AgentError("the poller issued \(kind) \(id), but this machine enrolled as \(pending.componentType)")
        }
        let pollerID = try MusterIDs.poller(trustDomain: id.trustDomain, name: pending.pollerName)
        try state.store(
            chain: chain, key: key, roots: roots,
            config: .init(
                poller: pending.poller, spiffeID: id.description, pollerID: pollerID.description,
                trustDomain: id.trustDomain, caPin: pending.caPin, selectors: answer.selectors))
        try? FileManager.default.removeItem(atPath: directory(state))
        return id
    }

    /// Any root-issued poller SVID under the pinned root; records which poller it was, so the poll and the
    /// identity stay with that one poller.
    static func anyPoller(_ seen: LockedValue<String?>) -> PeerPolicy {
        PeerPolicy { peer in
            guard let peer else {
                return RPCError(code: .unauthenticated, message: "the poller presented no certificate")
            }
            guard case .poller(let name) = peer.musterID else {
                return RPCError(code: .permissionDenied, message: "\(peer.spiffeID) is not a Muster poller")
            }
            guard peer.isRootIssued else {
                return RPCError(code: .permissionDenied, message: "poller \(name)'s SVID must be issued by the root CA")
            }
            seen.withLock { $0 = name }
            return nil
        }
    }

    static func loadOrMakeKey(_ state: AgentState) throws -> P256.Signing.PrivateKey {
        let path = directory(state) + "/key.pem"
        if let data = FileManager.default.contents(atPath: path) {
            do { return try P256.Signing.PrivateKey(pemRepresentation: String(decoding: data, as: UTF8.self)) } catch {
                throw AgentError("\(path) is not a P-256 key; remove \(directory(state)) to start over")
            }
        }
        let key = P256.Signing.PrivateKey()
        do {
            try SecureFile.makeDirectory(state.directory)
            try SecureFile.makeDirectory(directory(state))
            try SecureFile.write(try PEM.encode(Certificate.PrivateKey(key)), to: path)
        } catch {
            throw AgentError("cannot keep the enrollment key in \(directory(state)): \(error)")
        }
        return key
    }

    static func loadPending(_ state: AgentState) throws -> Pending? {
        let path = directory(state) + "/request.json"
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        do { return try decoder.decode(Pending.self, from: data) } catch {
            throw AgentError("\(path) is not an enrollment request; remove \(directory(state)) to start over")
        }
    }

    static func savePending(_ pending: Pending, _ state: AgentState) throws {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        do {
            try SecureFile.write(Array(try encoder.encode(pending)) + [0x0a], to: directory(state) + "/request.json")
        } catch {
            throw AgentError("cannot keep the enrollment request in \(directory(state)): \(error)")
        }
    }

    static func retryTime(in message: String) -> Duration {
        guard let range = message.range(of: #"retry in (\d+) s"#, options: .regularExpression) else {
            return .seconds(60)
        }
        let digits = message[range].filter(\.isNumber)
        return .seconds(min(3600, Int64(digits) ?? 60))
    }

    /// `1h02m`, `5m10s`, `42s`.
    public static func format(_ duration: Duration) -> String {
        let total = duration.components.seconds
        let (hours, minutes, seconds) = (total / 3600, total % 3600 / 60, total % 60)
        if hours > 0 { return String(format: "%dh%02dm", hours, minutes) }
        if minutes > 0 { return String(format: "%dm%02ds", minutes, seconds) }
        return "\(seconds)s"
    }

    /// `--timeout`: seconds, or a number with s, m or h (`90m`, `24h`); 1 s to 24 h.
    public static func parseDuration(_ text: String) -> Duration? {
        let units: [Character: Int64] = ["s": 1, "m": 60, "h": 3600]
        let (digits, unit) =
            text.last.flatMap { units[$0] }.map { (String(text.dropLast()), $0) } ?? (text, Int64(1))
        guard let value = Int64(digits), value > 0, value <= 24 * 3600 / unit else { return nil }
        return .seconds(value * unit)
    }
}
