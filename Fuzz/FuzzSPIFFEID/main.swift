import MusterIdentity

/// libFuzzer entry: text that should be a SPIFFE ID, a component name, an advertised address or a pin.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSPIFFEID(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let text = String(decoding: UnsafeRawBufferPointer(start: start, count: count), as: UTF8.self)
    if let id = try? SPIFFEID(parsing: text) {
        // A parsed ID prints as itself and parses again to the same value.
        precondition((try? SPIFFEID(parsing: id.description)) == id, "SPIFFE ID does not round-trip")
        if let muster = MusterID(id), let poller = muster.pollerName {
            precondition((try? MusterIDs.checkName(poller)) != nil, "a Muster ID with a bad poller name parsed")
        }
    }
    if let address = try? HostPort.validateAdvertised(text) {
        precondition(
            address.text.utf8.allSatisfy {
                $0 > 0x20 && $0 < 0x7f && $0 != UInt8(ascii: "'") && $0 != UInt8(ascii: "$")
            },
            "an advertised address with unsafe characters was accepted")
        precondition((1...65535).contains(address.port))
    }
    _ = try? MusterIDs.checkName(text)
    _ = try? CAPin.parse(text)
    _ = try? JoinToken(parsing: text)
    _ = TextRules.printable(text, limit: 64)
    return 0
}
