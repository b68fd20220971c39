import Foundation
import MusterArchive
import MusterErrors
import MusterIdentity

/// What `manifest.json` in a package says (DESIGN.md, "Package archive").
public struct PackageManifest: Codable, Sendable, Equatable {
    public var id: String
    public var name: String
    public var type: String
    public var trustDomain: String
    public var spiffeID: String
    public var expiresAt: String
    public var connect: String
    public var caPin: String
    public var pollerID: String?

    public init(
        id: String, name: String, type: String, trustDomain: String, spiffeID: String, expiresAt: String,
        connect: String, caPin: String, pollerID: String?
    ) {
        self.id = id
        self.name = name
        self.type = type
        self.trustDomain = trustDomain
        self.spiffeID = spiffeID
        self.expiresAt = expiresAt
        self.connect = connect
        self.caPin = caPin
        self.pollerID = pollerID
    }

    enum CodingKeys: String, CodingKey {
        case id, name, type, connect
        case trustDomain = "trust_domain"
        case spiffeID = "spiffe_id"
        case expiresAt = "expires_at"
        case caPin = "ca_pin"
        case pollerID = "poller_id"
    }
}

/// A package refused or an install that could not complete; nothing outside the staging directory was written.
public struct InstallError: ExitCodeError, CustomStringConvertible, Sendable {
    public let message: String
    public var description: String { message }
    init(_ message: String) { self.message = message }
}

/// Installs an onboarding package on an edge host: reads the whole archive through the checks of
/// `TarGz.read`, checks the manifest, token and bundle agree, writes everything into a fresh 0700 staging
/// directory (the token 0600), and moves it into place with one rename.
public enum PackageInstaller {
    /// The files a package must hold.
    static let required = ["manifest.json", "join-token", "bundle.pem"]

    /// Reads a package archive in memory and checks it whole (entries, manifest, token form, bundle and pin, ID)
    /// before anything is written; returns its files and manifest.
    public static func inspect(_ archive: [UInt8], expecting types: Set<String>) throws -> (
        files: [ArchiveFile], manifest: PackageManifest
    ) {
        let files: [ArchiveFile]
        do { files = try TarGz.read(archive) } catch { throw InstallError("package refused: \(error)") }
        let byName = Dictionary(uniqueKeysWithValues: files.map { ($0.name, $0) })
        for name in required where byName[name] == nil { throw InstallError("package refused: it has no \(name)") }

        let manifest: PackageManifest
        do {
            manifest = try JSONDecoder().decode(PackageManifest.self, from: Data(byName["manifest.json"]!.contents))
        } catch {
            throw InstallError("package refused: manifest.json is not a Muster manifest")
        }
        guard types.contains(manifest.type) else {
            throw InstallError(
                "package refused: it is for component type \(manifest.type); this installs \(types.sorted().joined(separator: " or ")) packages"
            )
        }
        do {
            _ = try JoinToken(
                parsing: String(decoding: byName["join-token"]!.contents, as: UTF8.self).trimmingCharacters(
                    in: .whitespacesAndNewlines))
            let bundle = try TrustBundle(
                trustDomain: manifest.trustDomain, pem: String(decoding: byName["bundle.pem"]!.contents, as: UTF8.self))
            guard bundle.roots.contains(where: { CAPin.of($0) == manifest.caPin }) else {
                throw InstallError(
                    "package refused: bundle.pem does not hold the CA the manifest pins (\(manifest.caPin))")
            }
            _ = try SPIFFEID(parsing: manifest.spiffeID)
        } catch let error as InstallError {
            throw error
        } catch {
            throw InstallError("package refused: \(error)")
        }

        return (files, manifest)
    }

    @discardableResult
    public static func install(archive path: String, into directory: String, expecting types: Set<String>) throws
        -> PackageManifest
    {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path),
            attributes[.type] as? FileAttributeType == .typeRegular
        else {
            throw InstallError("cannot read package \(path): not a regular file")
        }
        if let size = attributes[.size] as? Int, size > ArchiveLimits().maxArchiveBytes {
            throw InstallError(
                "package \(path) is \(size) bytes; a package is at most \(ArchiveLimits().maxArchiveBytes)")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw InstallError("cannot read package \(path)")
        }
        let (files, manifest) = try inspect(Array(data), expecting: types)
        let target = directory + "/package"
        guard !FileManager.default.fileExists(atPath: target) else {
            throw InstallError("a package is already installed in \(target); remove that directory to install another")
        }
        do {
            try SecureFile.makeDirectory(directory)
            try SecureFile.writeDirectory(
                files.map { file in
                    let secret = file.name == "join-token" || file.name.hasSuffix(".key")
                    return (file.name, file.contents, secret ? 0o600 : 0o644)
                }, to: target)
        } catch {
            throw InstallError("cannot install into \(directory): \(error)")
        }
        return manifest
    }
}
