import Crypto
import Foundation
import MusterEdge
import MusterErrors
import MusterIdentity
import SwiftASN1
import X509

/// The agent's state directory: `package/` (from `install`, until joined) and `identity/` — `svid.pem`,
/// `svid.key`, `bundle.pem` and `agent.json` (its poller and pin) — 0600 in 0700, replaced as one directory.
public struct AgentState: Sendable {
    public let directory: String

    public init(directory: String) { self.directory = directory }

    var packageDirectory: String { directory + "/package" }
    var identityDirectory: String { directory + "/identity" }
    public var svidPath: String { identityDirectory + "/svid.pem" }
    public var keyPath: String { identityDirectory + "/svid.key" }
    public var bundlePath: String { identityDirectory + "/bundle.pem" }
    var configPath: String { identityDirectory + "/agent.json" }

    /// Where the agent renews and what it trusts; written with each identity.
    public struct Config: Codable, Sendable, Equatable {
        public var poller: String
        public var spiffeID: String
        public var pollerID: String
        public var trustDomain: String
        public var caPin: String
        /// The package's Workload API selectors (nil: joined by a build that did not keep them; the next
        /// renewal fills them in). Empty: only the agent's own uid is served.
        public var selectors: [String]? = nil

        enum CodingKeys: String, CodingKey {
            case poller, selectors
            case spiffeID = "spiffe_id"
            case pollerID = "poller_id"
            case trustDomain = "trust_domain"
            case caPin = "ca_pin"
        }
    }

    public var hasIdentity: Bool {
        FileManager.default.fileExists(atPath: configPath)
            || FileManager.default.fileExists(atPath: identityDirectory + ".previous/agent.json")
    }

    /// Puts back the previous identity if a renewal stopped between its two renames; `run` calls it at start.
    public func recoverInterruptedRenewal() { SecureFile.restorePrevious(of: identityDirectory) }

    public func config() throws -> Config {
        guard hasIdentity, let data = FileManager.default.contents(atPath: configPath) else {
            throw AgentError(
                "no identity in \(directory); run muster-agent install --package FILE or muster-agent join first")
        }
        do { return try JSONDecoder().decode(Config.self, from: data) } catch {
            throw AgentError("\(configPath) is not a Muster agent configuration")
        }
    }

    /// The SVID chain (leaf first), its key and the trust bundle, as PEM text.
    public func identity() throws -> (chainPEM: String, keyPEM: String, bundlePEM: String) {
        (try read(svidPath), try read(keyPath), try read(bundlePath))
    }

    /// The SVID itself: the first certificate of `svid.pem`.
    public func leaf() throws -> Certificate {
        guard let first = try PEMDocument.parseMultiple(pemString: try read(svidPath)).first else {
            throw AgentError("\(svidPath) holds no certificate")
        }
        return try Certificate(pemDocument: first)
    }

    /// Writes a new identity as one directory (the previous one, if any, replaced in two renames).
    func store(chain: [Certificate], key: P256.Signing.PrivateKey, roots: [Certificate], config: Config) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let files: [(String, [UInt8])] = [
            ("svid.key", Array(try PEM.encode(Certificate.PrivateKey(key)).utf8)),
            ("svid.pem", Array(try PEM.encode(chain).utf8)),
            ("bundle.pem", Array(try PEM.encode(roots).utf8)),
            ("agent.json", Array(try encoder.encode(config)) + [0x0a]),
        ]
        do {
            try SecureFile.makeDirectory(directory)
            try SecureFile.writeDirectory(files.map { ($0.0, $0.1, 0o600) }, to: identityDirectory, replacing: true)
        } catch {
            throw AgentError("cannot store the identity in \(directory): \(error)")
        }
    }

    /// The installed package's manifest and token, if `install` put one here.
    func package() throws -> (manifest: PackageManifest, token: String) {
        guard let data = FileManager.default.contents(atPath: packageDirectory + "/manifest.json"),
            let manifest = try? JSONDecoder().decode(PackageManifest.self, from: data)
        else { throw AgentError("no package installed in \(directory)") }
        guard let token = FileManager.default.contents(atPath: packageDirectory + "/join-token") else {
            throw AgentError(
                "the package's join token is gone (it is single-use and removed after joining); install a new package")
        }
        return (manifest, String(decoding: token, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
    }

    func spendToken() { try? FileManager.default.removeItem(atPath: packageDirectory + "/join-token") }

    func read(_ path: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: path) else { throw AgentError("cannot read \(path)") }
        return String(decoding: data, as: UTF8.self)
    }
}

/// An agent failure: one line for the installer. `revoked` marks an identity its poller refuses to renew;
/// `retryable` a join refused with the generic token answer or not answered at all (worth another try).
public struct AgentError: ExitCodeError, CustomStringConvertible, Sendable {
    public let message: String
    public let revoked: Bool
    public let retryable: Bool
    /// A status of its own (an enrollment that expired: 5), else the default below.
    let code: Int32?
    /// 4 for an identity its poller revoked, so supervisors can tell it from a passing failure.
    public var exitCode: Int32 { code ?? (revoked ? 4 : 1) }
    public var description: String { message }
    public init(_ message: String, revoked: Bool = false, retryable: Bool = false, exitCode: Int32? = nil) {
        self.message = message
        self.revoked = revoked
        self.retryable = retryable
        self.code = exitCode
    }
}
