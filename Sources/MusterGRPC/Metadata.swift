/// gRPC metadata: ordered key/value pairs; keys are lowercase, binary values use keys ending in `-bin`.
public struct Metadata: Sendable, Equatable, Sequence, ExpressibleByDictionaryLiteral, CustomStringConvertible {
    /// One metadata entry; `value` holds raw bytes (UTF-8 text for non-binary keys).
    public struct Entry: Sendable, Equatable {
        public var key: String
        public var value: [UInt8]
    }

    public private(set) var entries: [Entry] = []

    public init() {}

    public init(dictionaryLiteral elements: (String, String)...) {
        for (key, value) in elements { add(key, value) }
    }

    /// Adds a text value; the key is lowercased.
    public mutating func add(_ key: String, _ value: String) {
        entries.append(Entry(key: key.lowercased(), value: Array(value.utf8)))
    }

    /// Adds a binary value; the key must end in `-bin`.
    public mutating func addBinary(_ key: String, _ value: [UInt8]) {
        entries.append(Entry(key: key.lowercased(), value: value))
    }

    /// The first text value for `key`, if any.
    public subscript(key: String) -> String? {
        let key = key.lowercased()
        return entries.first { $0.key == key }.map { String(decoding: $0.value, as: UTF8.self) }
    }

    /// Every value for `key`, as bytes.
    public func values(for key: String) -> [[UInt8]] {
        let key = key.lowercased()
        return entries.filter { $0.key == key }.map(\.value)
    }

    public var isEmpty: Bool { entries.isEmpty }
    public var count: Int { entries.count }
    public func makeIterator() -> IndexingIterator<[Entry]> { entries.makeIterator() }

    mutating func append(_ entry: Entry) { entries.append(entry) }

    /// Why this metadata cannot be sent, or nil when it can: gRPC core refuses the whole batch otherwise.
    func validationError() -> String? {
        for entry in entries {
            guard entry.key.isEmpty == false else { return "metadata key is empty" }
            guard entry.key.hasPrefix(":") == false, entry.key.hasPrefix("grpc-") == false else {
                return "metadata key '\(entry.key)' is reserved"
            }
            let legal = entry.key.utf8.allSatisfy { byte in
                (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte)
                    || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
                    || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ".")
            }
            guard legal else { return "metadata key '\(entry.key)' has a character outside [a-z0-9-_.]" }
            if entry.key.hasSuffix("-bin") == false {
                let printable = entry.value.allSatisfy { $0 >= 0x20 && $0 <= 0x7E }
                guard printable else {
                    return "metadata value for '\(entry.key)' is not printable ASCII; use a -bin key"
                }
            }
        }
        return nil
    }

    public var description: String {
        "["
            + entries.map { entry in
                entry.key.hasSuffix("-bin")
                    ? "\(entry.key): <\(entry.value.count) bytes>"
                    : "\(entry.key): \(String(decoding: entry.value, as: UTF8.self))"
            }.joined(separator: ", ") + "]"
    }
}
