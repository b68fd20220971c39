import MusterIdentity

/// libFuzzer entry: a CSR as Core and pollers receive one (DER), and as PEM text.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCSR(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let bytes = Array(UnsafeRawBufferPointer(start: start, count: count))
    _ = try? CSRCheck.publicKey(fromDER: bytes, purpose: .leaf)
    _ = try? CSRCheck.publicKey(fromDER: bytes, purpose: .certificateAuthority)
    _ = try? CSRCheck.publicKey(fromPEM: String(decoding: bytes, as: UTF8.self))
    return 0
}
