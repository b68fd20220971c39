/// What Muster accepts in free-text fields (names, sites, notes, reasons, fields a poller reports): printable
/// Unicode only, no control characters (ESC, NUL, CR, LF, DEL, C1), so no stored text can move a terminal's
/// cursor, forge a log line or hide in an audit row.
public enum TextRules {
    /// True when `scalar` is a control character (C0, DEL, C1) or a line/paragraph separator.
    public static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value < 0x20 || (0x7f...0x9f).contains(scalar.value) || scalar.value == 0x2028 || scalar.value == 0x2029
    }

    /// The first control character in `text`, if any, as `U+XXXX` for an error message.
    public static func firstControl(in text: String, allowingNewlines: Bool = false) -> String? {
        for scalar in text.unicodeScalars where isControl(scalar) {
            if allowingNewlines, scalar == "\n" { continue }
            let hex = String(scalar.value, radix: 16, uppercase: true)
            return "U+" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
        }
        return nil
    }

    /// `text` with every control character replaced by U+FFFD and cut to `limit` characters: for text from
    /// a peer that is recorded rather than refused (a poller's report of an agent's address or a reason).
    public static func printable(_ text: String, limit: Int) -> String {
        String(String.UnicodeScalarView(text.unicodeScalars.map { isControl($0) ? "\u{FFFD}" : $0 }).prefix(limit))
    }
}
