import CGRPCCore

/// One reference to a connection's `grpc_auth_context`, released once, in `deinit`. gRPC core gives every call on
/// a connection a reference to the same context, so while one is held its address names that connection alone.
final class AuthContext: @unchecked Sendable {
    // @unchecked: core never changes a connection's context after the handshake (no auth metadata processor is
    // installed), and its reference count is atomic.
    private let raw: OpaquePointer

    init(_ raw: OpaquePointer) { self.raw = raw }

    deinit { grpc_auth_context_release(raw) }

    /// The context's address: a key no other live context shares while this reference is held.
    var key: UInt { UInt(bitPattern: Int(bitPattern: UnsafeRawPointer(raw))) }

    /// The PEM chain the peer presented during the TLS handshake (leaf first), if any.
    /// On a server, OpenSSL's chain property leaves out the peer's leaf, so the leaf is put in front.
    var peerCertificateChainPEM: String? {
        guard let leaf = property("x509_pem_cert") else { return nil }
        guard let chain = property("x509_pem_cert_chain"), chain.hasPrefix(leaf) == false else { return leaf }
        return leaf.hasSuffix("\n") ? leaf + chain : leaf + "\n" + chain
    }

    private func property(_ name: String) -> String? {
        // The iterator keeps the name pointer, so the C string must outlive every iterator call.
        name.withCString { cName in
            var iterator = grpc_auth_context_find_properties_by_name(raw, cName)
            guard let property = grpc_auth_property_iterator_next(&iterator), let value = property.pointee.value
            else { return nil }
            return String(
                decoding: UnsafeRawBufferPointer(start: value, count: property.pointee.value_length), as: UTF8.self)
        }
    }
}
