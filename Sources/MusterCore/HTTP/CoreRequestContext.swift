import Hummingbird
import NIOCore

/// Hummingbird's request context plus the caller's address (for audit rows).
public struct CoreRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public let remoteIP: String?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteIP = source.channel.remoteAddress?.ipAddress
    }

    /// Package requests are small; anything bigger is refused before it is read.
    public var maxUploadSize: Int { 64 * 1024 }

    /// A bulk create holds up to 1,000 package requests.
    public static let maxBulkUploadSize = 4 * 1024 * 1024
}
