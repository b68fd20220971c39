import Foundation

/// Prints API answers: aligned tables for people, JSON for machines.
enum Output {
    static func printJSON(_ object: Any) {
        if let data = try? JSONSerialization.data(
            withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        {
            print(String(decoding: data, as: UTF8.self))
        }
    }

    static func table(_ rows: [[String: Any]], columns: [(title: String, key: String)]) {
        let cells = rows.map { row in columns.map { text(row[$0.key]) } }
        var widths = columns.map(\.title.count)
        for line in cells { for (index, cell) in line.enumerated() { widths[index] = max(widths[index], cell.count) } }
        func render(_ values: [String]) -> String {
            values.enumerated().map { index, value in
                index == values.count - 1 ? value : value.padding(toLength: widths[index], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }
        print(render(columns.map(\.title)))
        for line in cells { print(render(line)) }
    }

    static func text(_ value: Any?) -> String {
        switch value {
        case nil, is NSNull: return "-"
        case let text as String: return printable(text)
        case let list as [Any]: return list.map { text($0) }.joined(separator: ",")
        case let number as NSNumber: return number.stringValue
        case let map as [String: Any]: return map.keys.sorted().map { "\($0)=\(text(map[$0]))" }.joined(separator: ",")
        default: return "\(value!)"
        }
    }

    /// Text from Core with control characters (ESC, NUL, CR, …) shown as U+FFFD, so nothing stored can drive
    /// the operator's terminal.
    static func printable(_ text: String) -> String {
        String(
            String.UnicodeScalarView(
                text.unicodeScalars.map { scalar in
                    scalar.value < 0x20 || (0x7f...0x9f).contains(scalar.value) ? "\u{FFFD}" : scalar
                }))
    }

    /// One package, field per line, then its join command.
    static func package(_ package: [String: Any]) {
        let keys = [
            "id", "name", "component_type", "status", "spiffe_id", "poller_id", "site", "selectors", "created_by",
            "created_at",
            "expires_at", "delivered_at", "downloaded_at", "activated_at", "activated_from_ip", "revoked_at",
            "revoke_reason", "notes",
        ]
        for key in keys { print("\(key.padding(toLength: 18, withPad: " ", startingAt: 0)) \(text(package[key]))") }
        if let command = package["join_command"] as? String {
            print("\njoin (run beside the extracted package):\n  \(command)")
        }
    }
}
