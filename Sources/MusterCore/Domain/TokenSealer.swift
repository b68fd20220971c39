import Crypto
import Foundation
import MusterIdentity

/// Seals clear join tokens at rest with AES-256-GCM; the package id is the associated data, so a sealed
/// token copied onto another package row does not open.
public struct TokenSealer: Sendable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    private let keyBytes: [UInt8]
    private var key: SymmetricKey { SymmetricKey(data: keyBytes) }

    public init(key: SymmetricKey) { self.keyBytes = key.withUnsafeBytes { Array($0) } }

    // The key never prints, not even through reflection (a service's fields can end up in a debug log).
    public var description: String { "TokenSealer(AES-256-GCM, key redacted)" }
    public var debugDescription: String { description }
    public var customMirror: Mirror { Mirror(self, children: ["key": "redacted"]) }

    /// The key from `base64` if given, else from `file`; creates the file (0600, 32 random bytes) if missing.
    public static func load(base64: String?, file: String) throws -> TokenSealer {
        if let base64 {
            guard let data = Data(base64Encoded: base64.trimmingCharacters(in: .whitespacesAndNewlines)),
                data.count == 32
            else {
                throw CoreError(.secrets, "MUSTER_TOKEN_KEY must be 32 bytes in base64")
            }
            return TokenSealer(key: SymmetricKey(data: data))
        }
        if let data = FileManager.default.contents(atPath: file) {
            guard data.count == 32 else {
                throw CoreError(.secrets, "token key file \(file) must hold exactly 32 bytes")
            }
            return TokenSealer(key: SymmetricKey(data: data))
        }
        let key = SymmetricKey(size: .bits256)
        do {
            try SecureFile.write(key.withUnsafeBytes { Array($0) }, to: file, mode: 0o600)
        } catch {
            throw CoreError(.secrets, "cannot create token key file: \(error)")
        }
        return TokenSealer(key: key)
    }

    public func seal(_ token: JoinToken, packageID: String) throws -> Data {
        let box = try AES.GCM.seal(Data(token.secret.utf8), using: key, authenticating: Data(packageID.utf8))
        guard let combined = box.combined else { throw CoreError(.secrets, "AES-GCM produced no combined box") }
        return combined
    }

    public func open(_ sealed: Data, packageID: String) throws -> JoinToken {
        do {
            let box = try AES.GCM.SealedBox(combined: sealed)
            let clear = try AES.GCM.open(box, using: key, authenticating: Data(packageID.utf8))
            return try JoinToken(parsing: String(decoding: clear, as: UTF8.self))
        } catch {
            throw CoreError(.secrets, "the sealed join token of package \(packageID) does not open with this key")
        }
    }
}
