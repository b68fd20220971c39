import X509

/// How Muster writes a certificate serial number everywhere it records or prints one: lowercase hex, two
/// digits a byte, colon-separated (`0d:67:b9:05`), the form `openssl x509 -serial` users can compare.
public enum SerialNumber {
    /// A fresh random serial of exactly 20 octets, positive (RFC 5280 §4.1.2.2: at most 20 octets). The
    /// library's own random serial is 20 random bytes plus a sign octet half the time, which strict parsers
    /// (pyca/cryptography among them) refuse.
    public static func random() -> Certificate.SerialNumber {
        var bytes = ByteEncoding.randomBytes(20)
        bytes[0] = max(1, bytes[0] & 0x7f)
        return Certificate.SerialNumber(bytes: bytes)
    }

    /// Lowercase hex pairs joined by colons (`0a:1b:…`): how serials are recorded and logged.
    public static func text(_ serial: Certificate.SerialNumber) -> String {
        let hex = Array(ByteEncoding.hex(serial.bytes).utf8)
        var text: [UInt8] = []
        text.reserveCapacity(hex.count * 3 / 2)
        for index in stride(from: 0, to: hex.count, by: 2) {
            if index > 0 { text.append(UInt8(ascii: ":")) }
            text += hex[index..<index + 2]
        }
        return String(decoding: text, as: UTF8.self)
    }
}

extension Certificate {
    /// This certificate's serial number as Muster records it.
    public var serialText: String { MusterIdentity.SerialNumber.text(serialNumber) }
}
