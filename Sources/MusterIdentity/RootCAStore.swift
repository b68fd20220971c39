import Foundation
import X509

/// Where Core keeps its root CA: `DIR/root.key` (0600) and `DIR/bundle.pem` in a 0700 directory, written atomically.
public struct RootCAStore: Sendable {
    public let directory: String

    public init(directory: String) { self.directory = directory }

    var keyPath: String { directory + "/root.key" }
    var certificatePath: String { directory + "/root.pem" }
    var bundlePath: String { directory + "/bundle.pem" }

    /// Loads the root CA, or creates one for `trustDomain` on first use.
    /// Refuses a stored CA of another trust domain rather than silently serving it.
    public func loadOrCreate(trustDomain: String) throws(IdentityError) -> (
        authority: CertificateAuthority, bundle: TrustBundle
    ) {
        if FileManager.default.fileExists(atPath: keyPath) {
            return try load(trustDomain: trustDomain)
        }
        do {
            let authority = try CertificateAuthority.createRoot(trustDomain: trustDomain)
            try SecureFile.makeDirectory(directory)
            try SecureFile.write(PEM.encode([authority.certificate]), to: certificatePath, mode: 0o644)
            try SecureFile.write(PEM.encode([authority.certificate]), to: bundlePath, mode: 0o644)
            // The key goes last: its presence is what marks the CA as created.
            try SecureFile.write(PEM.encode(authority.privateKey), to: keyPath, mode: 0o600)
            return (authority, TrustBundle(trustDomain: trustDomain, roots: [authority.certificate]))
        } catch let error as IdentityError {
            throw error
        } catch {
            throw IdentityError(.storage, "cannot create the root CA in \(directory): \(error)")
        }
    }

    func load(trustDomain: String) throws(IdentityError) -> (authority: CertificateAuthority, bundle: TrustBundle) {
        let keyPEM: String
        let certificatePEM: String
        let bundlePEM: String
        do {
            keyPEM = try String(contentsOfFile: keyPath, encoding: .utf8)
            certificatePEM = try String(contentsOfFile: certificatePath, encoding: .utf8)
            bundlePEM = (try? String(contentsOfFile: bundlePath, encoding: .utf8)) ?? certificatePEM
        } catch {
            throw IdentityError(.storage, "cannot read the root CA in \(directory): \(error.localizedDescription)")
        }
        let key: Certificate.PrivateKey
        let certificate: Certificate
        do {
            key = try Certificate.PrivateKey(pemEncoded: keyPEM)
            certificate = try Certificate(pemEncoded: certificatePEM)
        } catch {
            throw IdentityError(.storage, "the root CA in \(directory) cannot be parsed")
        }
        guard key.publicKey == certificate.publicKey else {
            throw IdentityError(.storage, "the root CA key in \(directory) does not match its certificate")
        }
        guard (try? CertificateAuthority.rootName(trustDomain: trustDomain)) == certificate.subject else {
            throw IdentityError(
                .storage, "the root CA in \(directory) belongs to another trust domain than \(trustDomain)")
        }
        var bundle = try TrustBundle(trustDomain: trustDomain, pem: bundlePEM)
        if bundle.roots.contains(certificate) == false { bundle.roots.insert(certificate, at: 0) }
        return (CertificateAuthority(certificate: certificate, privateKey: key), bundle)
    }
}
