import Foundation
import Logging
import MusterGRPC
import MusterIdentity
import MusterProto

/// The standard `SpiffeWorkloadAPI` service on the agent's Unix socket: the X.509-SVID and bundle streams, each
/// sending the current material at once and again whenever it changes; the JWT methods UNIMPLEMENTED. Every call
/// must carry `workload.spiffe.io: true` (the standard's guard against a browser or proxy forwarding a request)
/// and come from a caller the package's selectors entitle.
public struct WorkloadAPIService: GRPCService {
    let identity: WorkloadIdentity
    let entitlement: WorkloadEntitlement
    let logger: Logger

    static let service = "/SpiffeWorkloadAPI/"

    public init(identity: WorkloadIdentity, entitlement: WorkloadEntitlement = .init(), logger: Logger) {
        self.identity = identity
        self.entitlement = entitlement
        self.logger = logger
    }

    public func register(with router: inout GRPCRouter) {
        router.serverStreaming(
            Self.service + "FetchX509SVID", X509SVIDRequest.self, X509SVIDResponse.self
        ) { _, writer, context in
            let caller = try admit(context)
            try await follow(caller, method: "FetchX509SVID") { svid in
                try await writer.write(Self.svidResponse(svid))
            }
        }
        router.serverStreaming(
            Self.service + "FetchX509Bundles", X509BundlesRequest.self, X509BundlesResponse.self
        ) { _, writer, context in
            let caller = try admit(context)
            // Only a changed bundle is news to this stream; a renewed SVID under the same root is not.
            try await follow(caller, method: "FetchX509Bundles", unchanged: { $0.bundleDER == $1.bundleDER }) { svid in
                var response = X509BundlesResponse()
                response.bundles = [svid.trustDomainID: svid.bundleDER]
                try await writer.write(response)
            }
        }
        router.serverStreaming(
            Self.service + "FetchJWTBundles", JWTBundlesRequest.self, JWTBundlesResponse.self
        ) { _, _, context in
            _ = try admit(context)
            throw Self.noJWT
        }
        router.unary(Self.service + "FetchJWTSVID", JWTSVIDRequest.self) { _, context -> JWTSVIDResponse in
            _ = try admit(context)
            throw Self.noJWT
        }
        router.unary(Self.service + "ValidateJWTSVID", ValidateJWTSVIDRequest.self) {
            _, context -> ValidateJWTSVIDResponse in
            _ = try admit(context)
            throw Self.noJWT
        }
    }

    static let noJWT = RPCError(
        code: .unimplemented, message: "this agent serves X.509-SVIDs only; JWT-SVIDs are not issued")

    static func svidResponse(_ svid: WorkloadSVID) -> X509SVIDResponse {
        var entry = X509SVID()
        entry.spiffeID = svid.spiffeID
        entry.x509Svid = svid.chainDER
        entry.x509SvidKey = svid.keyDER
        entry.bundle = svid.bundleDER
        var response = X509SVIDResponse()
        response.svids = [entry]
        return response
    }

    /// The header check, then who is calling; the entitlement itself is checked against each material, since
    /// the selectors come with the identity.
    func admit(_ context: ServerContext) throws -> PeerCredentials {
        guard context.requestMetadata["workload.spiffe.io"] == "true" else {
            throw RPCError(code: .invalidArgument, message: "security header missing from request")
        }
        guard let caller = context.peerCredentials else {
            throw RPCError(code: .permissionDenied, message: "the caller's process credentials are unknown")
        }
        return caller
    }

    /// Sends `send` for the current identity and for every new one (a new SVID, key or bundle), until the
    /// caller goes away; ends the stream with the status the material calls for.
    func follow(
        _ caller: PeerCredentials, method: String,
        unchanged: (WorkloadSVID, WorkloadSVID) -> Bool = { $0 == $1 },
        _ send: (WorkloadSVID) async throws -> Void
    ) async throws {
        var sent: WorkloadSVID?
        for await material in identity.follow() {
            switch material {
            case .unavailable(let reason):
                throw RPCError(code: .unavailable, message: "no identity to serve: \(reason)")
            case .revoked(let reason):
                throw RPCError(code: .permissionDenied, message: "the identity was revoked: \(reason)")
            case .serving(let svid):
                guard entitlement.allows(caller, under: svid.selectors) else {
                    logger.notice(
                        "workload refused",
                        metadata: [
                            "method": "\(method)", "uid": "\(caller.uid)", "gid": "\(caller.gid)",
                            "pid": "\(caller.pid)", "spiffe_id": "\(svid.spiffeID)",
                        ])
                    throw RPCError(
                        code: .permissionDenied,
                        message: "uid \(caller.uid) (gid \(caller.gid)) is not entitled to \(svid.spiffeID)")
                }
                if let sent, unchanged(svid, sent) { continue }
                if sent == nil {
                    logger.info(
                        "workload attached",
                        metadata: ["method": "\(method)", "uid": "\(caller.uid)", "pid": "\(caller.pid)"])
                }
                try await send(svid)
                sent = svid
            }
        }
        throw RPCError(code: .cancelled, message: "the call ended")
    }
}
