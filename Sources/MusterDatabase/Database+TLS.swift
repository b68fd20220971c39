import NIOSSL
import PostgresKit

extension Database {
    /// PostgresNIO's TLS setting for a libpq `sslmode`. A context that cannot be built (an unreadable
    /// `sslrootcert`) becomes a setting every connection fails with, so the error surfaces where connections do.
    static func postgresTLS(_ tls: PostgresTLS) -> PostgresConnection.Configuration.TLS {
        guard tls.mode != .disable else { return .disable }
        var configuration = TLSConfiguration.makeClientConfiguration()
        let verified =
            tls.mode == .verifyCA || tls.mode == .verifyFull || (tls.mode == .require && tls.rootCertificate != nil)
        if verified, let path = tls.rootCertificate {
            configuration.trustRoots = .file(path)
            configuration.certificateVerification =
                tls.mode == .verifyFull ? .fullVerification : .noHostnameVerification
        } else {
            configuration.certificateVerification = .none
        }
        do {
            let context = try NIOSSLContext(configuration: configuration)
            return tls.mode == .prefer ? .prefer(context) : .require(context)
        } catch {
            // Unreachable through `DatabaseLocation` checks except for a bad sslrootcert file; connections then fail.
            var broken = TLSConfiguration.makeClientConfiguration()
            broken.trustRoots = .certificates([])
            broken.certificateVerification = .fullVerification
            return (try? NIOSSLContext(configuration: broken)).map { .require($0) } ?? .disable
        }
    }
}
