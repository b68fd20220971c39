import Foundation
import MusterStore

/// Markup for the console. A `String` interpolated into it is escaped and an `HTML` value is kept as it is, so
/// text from the store (names, notes, reasons) can only ever be shown as text.
struct HTML: Sendable, ExpressibleByStringInterpolation, CustomStringConvertible {
    private(set) var text: String

    init(stringLiteral value: String) { text = value }
    init(stringInterpolation: Interpolation) { text = stringInterpolation.text }
    init(joining parts: [HTML]) { text = parts.map(\.text).joined() }
    init(_ html: HTML) { self = html }

    static func + (left: HTML, right: HTML) -> HTML { HTML(joining: [left, right]) }

    var description: String { text }

    struct Interpolation: StringInterpolationProtocol {
        var text = ""
        init(literalCapacity: Int, interpolationCount: Int) { text.reserveCapacity(literalCapacity * 2) }
        mutating func appendLiteral(_ literal: String) { text += literal }
        mutating func appendInterpolation(_ value: String) { text += HTML.escape(value) }
        mutating func appendInterpolation(_ value: String?) { text += HTML.escape(value ?? "") }
        mutating func appendInterpolation(_ value: Int) { text += String(value) }
        mutating func appendInterpolation(_ value: Int64) { text += String(value) }
        mutating func appendInterpolation(_ value: HTML) { text += value.text }
        mutating func appendInterpolation(_ values: [HTML]) { for value in values { text += value.text } }
    }

    /// Text made safe for element content and quoted attribute values.
    static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for character in text {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(character)
            }
        }
        return out
    }

    /// A `<time>` element: UTC in the markup and on hover; the script shows it in the browser's zone.
    static func time(_ millis: Int64?) -> HTML {
        guard let millis else { return "<span class=\"muted\">—</span>" }
        let text = Timestamp.text(millis)
        let utc = text.replacingOccurrences(of: "T", with: " ").prefix(19) + " UTC"
        return "<time datetime=\"\(text)\" title=\"\(String(utc))\">\(String(utc))</time>"
    }

    /// A `<time>` for RFC 3339 text as the views carry it.
    static func time(_ text: String?) -> HTML { time(text.flatMap(Timestamp.millis(parsing:))) }

    /// Shows `condition` content or nothing.
    static func when(_ condition: Bool, _ content: @autoclosure () -> HTML) -> HTML { condition ? content() : "" }

    /// A status word as a badge.
    static func status(_ status: String) -> HTML {
        "<span class=\"status status-\(status)\" data-status>\(status)</span>"
    }
}

extension Array where Element == HTML {
    func joined() -> HTML { HTML(joining: self) }
}
