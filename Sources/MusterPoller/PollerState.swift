import Foundation
import MusterEdge
import MusterErrors
import MusterIdentity
import X509

/// The poller's state directory: `package/` (from `install`) and `identity/` (after attestation), 0700,
/// keys 0600, each written as a whole and moved into place with one rename.
public struct PollerState: Sendable {
    public let directory: String

    public init(directory: String) { self.directory = directory }

    var packageDirectory: String { directory + "/package" }
    var identityDirectory: String { directory + "/identity" }
    public var svidPath: String { identityDirectory + "/svid.pem" }
    public var svidKeyPath: String { identityDirectory + "/svid.key" }
    public var caPath: String { identityDirectory + "/ca.pem" }
    public var caKeyPath: String { identityDirectory + "/ca.key" }
    public var bundlePath: String { identityDirectory + "/bundle.pem" }
    /// The CA certificate replaced by the last CA renewal (no key), so SVIDs it signed can still renew.
    public var previousCAPath: String { identityDirectory + "/ca-previous.pem" }

    public var isAttested: Bool {
        FileManager.default.fileExists(atPath: identityDirectory)
            || FileManager.default.fileExists(atPath: identityDirectory + ".previous")
    }

    /// Puts back the previous identity if a renewal stopped between its two renames. Only the running poller
    /// calls this (at start), so a concurrent `status` never races a renewal in progress.
    public func recoverInterruptedRenewal() { SecureFile.restorePrevious(of: identityDirectory) }
    /// The durable package cache, stream cursor, issued SVIDs and activation outbox.
    public var cachePath: String { directory + "/cache.db" }

    public func manifest() throws -> PackageManifest {
        guard let data = FileManager.default.contents(atPath: packageDirectory + "/manifest.json") else {
            throw PollerError(
                "no package installed in \(directory); run muster-poller install --package FILE --dir \(directory)")
        }
        do { return try JSONDecoder().decode(PackageManifest.self, from: data) } catch {
            throw PollerError("\(packageDirectory)/manifest.json is not a Muster manifest")
        }
    }

    func joinToken() throws -> String {
        guard let data = FileManager.default.contents(atPath: packageDirectory + "/join-token") else {
            throw PollerError(
                "the package's join token is gone (it is single-use and removed after attestation); install a new package"
            )
        }
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Writes the attested identity as one directory, then spends the token file.
    /// On renewal the previous directory is replaced in two renames; a crash between them is undone at start.
    func storeIdentity(
        svidChainPEM: String, svidKeyPEM: String, caChainPEM: String, caKeyPEM: String, bundlePEM: String,
        previousCAPEM: String? = nil, replacing: Bool = false
    ) throws {
        var files = [
            ("svid.key", svidKeyPEM), ("svid.pem", svidChainPEM), ("ca.key", caKeyPEM), ("ca.pem", caChainPEM),
            ("bundle.pem", bundlePEM),
        ]
        if let previousCAPEM { files.append(("ca-previous.pem", previousCAPEM)) }
        do {
            try SecureFile.writeDirectory(
                files.map { ($0.0, Array($0.1.utf8), 0o600) }, to: identityDirectory, replacing: replacing)
        } catch {
            throw PollerError("cannot store the identity in \(directory): \(error)")
        }
        try? FileManager.default.removeItem(atPath: packageDirectory + "/join-token")
    }

    func read(_ path: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: path) else { throw PollerError("cannot read \(path)") }
        return String(decoding: data, as: UTF8.self)
    }
}

/// A poller failure: one line for the installer.
public struct PollerError: ExitCodeError, CustomStringConvertible, Sendable {
    public let message: String
    public var description: String { message }
    public init(_ message: String) { self.message = message }
}
