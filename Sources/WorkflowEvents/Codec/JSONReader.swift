import Foundation

// The contract decoder's reader: bytes, errors, strings. Its values and the event
// are in JSONReader+Values.swift and JSONReader+Event.swift.

// MARK: - The reader

/// The bytes of JSON's structure that the reader looks for.
enum JSONByte {
    static let quote = UInt8(ascii: "\"")
    static let backslash = UInt8(ascii: "\\")
    static let comma = UInt8(ascii: ",")
    static let colon = UInt8(ascii: ":")
}

/// The fields of the event object, matched on their raw bytes.
enum EventField {
    case eventID, eventType, source, workflowID, workflowRunID, timestamp, payload, metadata, schemaVersion
    case unknown

    static func match(_ key: UnsafeBufferPointer<UInt8>) -> EventField {
        @inline(__always) func equals(_ literal: StaticString) -> Bool {
            literal.utf8CodeUnitCount == key.count
                && memcmp(literal.utf8Start, key.baseAddress!, key.count) == 0
        }
        switch key.count {
        case 6: return equals("source") ? .source : .unknown
        case 7: return equals("payload") ? .payload : .unknown
        case 8: return equals("event_id") ? .eventID : (equals("metadata") ? .metadata : .unknown)
        case 9: return equals("timestamp") ? .timestamp : .unknown
        case 10: return equals("event_type") ? .eventType : .unknown
        case 11: return equals("workflow_id") ? .workflowID : .unknown
        case 14: return equals("schema_version") ? .schemaVersion : .unknown
        case 15: return equals("workflow_run_id") ? .workflowRunID : .unknown
        default: return .unknown
        }
    }

    static func match(_ key: String) -> EventField {
        var key = key
        return key.withUTF8 { match($0) }
    }
}

struct JSONReader {
    let bytes: UnsafeBufferPointer<UInt8>
    var index: Int = 0

    init(_ bytes: UnsafeBufferPointer<UInt8>) {
        self.bytes = bytes
    }

    // MARK: Errors

    func error(
        _ code: WorkflowEventValidationError.Code, _ field: String?, _ reason: String, at offset: Int? = nil
    ) -> WorkflowEventValidationError {
        WorkflowEventValidationError(code: code, field: field, byteOffset: offset ?? index, reason: reason)
    }

    func describeByte(at offset: Int) -> String {
        guard offset < bytes.count else { return "end of input" }
        let byte = bytes[offset]
        if byte >= 0x21 && byte < 0x7F { return "'\(Character(Unicode.Scalar(byte)))'" }
        return "byte 0x\(String(byte, radix: 16, uppercase: true))"
    }

    func syntax(_ expected: String, _ field: String?) -> WorkflowEventValidationError {
        error(.invalidJSON, field, "expected \(expected), found \(describeByte(at: index))")
    }

    // MARK: Low level

    @inline(__always)
    mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x0A, 0x0D, 0x09: index += 1
            default: return
            }
        }
    }

    @inline(__always)
    func peek() -> UInt8? {
        index < bytes.count ? bytes[index] : nil
    }

    @inline(__always)
    mutating func consume(_ byte: UInt8) -> Bool {
        if index < bytes.count && bytes[index] == byte {
            index += 1
            return true
        }
        return false
    }

    mutating func expectEnd() throws(WorkflowEventValidationError) {
        skipWhitespace()
        if index != bytes.count {
            throw error(.invalidJSON, nil, "unexpected \(describeByte(at: index)) after the JSON value")
        }
    }

    mutating func expectLiteral(_ literal: StaticString, _ field: String?) throws(WorkflowEventValidationError) {
        let count = literal.utf8CodeUnitCount
        guard index + count <= bytes.count,
            memcmp(literal.utf8Start, bytes.baseAddress! + index, count) == 0
        else {
            throw syntax("a JSON value", field)
        }
        index += count
    }

    // MARK: Strings

    /// Reads a string and returns the raw bytes between the quotes when it has no escapes,
    /// so that keys can be matched without building a `String`. `hasEscapes` says when the
    /// caller must decode with `readString` instead.
    mutating func scanString(
        _ field: String?
    ) throws(WorkflowEventValidationError) -> (start: Int, end: Int, hasEscapes: Bool, isASCII: Bool) {
        guard consume(JSONByte.quote) else { throw syntax("a string", field) }
        let start = index
        var hasEscapes = false
        var isASCII = true
        // Eight bytes at a time while none of them is a quote, a backslash, a control
        // character or a non-ASCII byte; the byte loop below handles those.
        if let base = bytes.baseAddress {
            let raw = UnsafeRawPointer(base)
            while index + 8 <= bytes.count {
                let word = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: index, as: UInt64.self))
                let mask = Self.attention(word)
                if mask != 0 {
                    // The lowest flagged byte is the first one that needs a look.
                    index += mask.trailingZeroBitCount >> 3
                    break
                }
                index += 8
            }
        }
        while index < bytes.count {
            let byte = bytes[index]
            if byte == JSONByte.quote {
                let end = index
                index += 1
                return (start, end, hasEscapes, isASCII)
            }
            if byte == JSONByte.backslash {
                hasEscapes = true
                index += 2
                continue
            }
            if byte < 0x20 {
                throw error(.invalidJSON, field, "control character 0x\(String(byte, radix: 16)) in a string must be escaped")
            }
            if byte >= 0x80 { isASCII = false }
            index += 1
        }
        throw error(.invalidJSON, field, "unterminated string", at: start - 1)
    }

    /// The high bit of each byte of `word` that is a quote, a backslash, below 0x20 or
    /// above 0x7F. Bits above the first such byte may be set wrongly (a borrow carries
    /// upwards); the lowest set bit is always right.
    @inline(__always)
    static func attention(_ word: UInt64) -> UInt64 {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        func zeroBytes(_ x: UInt64) -> UInt64 { (x &- ones) & ~x & highs }
        let quotes = zeroBytes(word ^ (ones &* 0x22))
        let backslashes = zeroBytes(word ^ (ones &* 0x5C))
        let controls = (word &- ones &* 0x20) & ~word & highs
        return quotes | backslashes | controls | (word & highs)
    }

    mutating func readString(_ field: String?) throws(WorkflowEventValidationError) -> String {
        let scan = try scanString(field)
        return try makeString(scan, field)
    }

    func makeString(
        _ scan: (start: Int, end: Int, hasEscapes: Bool, isASCII: Bool), _ field: String?
    ) throws(WorkflowEventValidationError) -> String {
        let slice = UnsafeBufferPointer(rebasing: bytes[scan.start..<scan.end])
        if !scan.hasEscapes {
            if scan.isASCII { return String(decoding: slice, as: UTF8.self) }
            guard let text = String(validating: slice, as: UTF8.self) else {
                throw error(.invalidUTF8, field, "string is not valid UTF-8", at: scan.start)
            }
            return text
        }
        return try unescape(from: scan.start, to: scan.end, field)
    }

    func unescape(from start: Int, to end: Int, _ field: String?) throws(WorkflowEventValidationError) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(end - start)
        var i = start
        while i < end {
            let byte = bytes[i]
            if byte != JSONByte.backslash {
                out.append(byte)
                i += 1
                continue
            }
            guard i + 1 < end else { throw error(.invalidJSON, field, "unterminated escape", at: i) }
            let escaped = bytes[i + 1]
            i += 2
            switch escaped {
            case UInt8(ascii: "\""): out.append(JSONByte.quote)
            case UInt8(ascii: "\\"): out.append(JSONByte.backslash)
            case UInt8(ascii: "/"): out.append(UInt8(ascii: "/"))
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = try hex4(at: i, end: end, field)
                i += 4
                if scalar >= 0xD800 && scalar < 0xDC00 {
                    guard i + 6 <= end, bytes[i] == JSONByte.backslash, bytes[i + 1] == UInt8(ascii: "u") else {
                        throw error(.invalidJSON, field, "high surrogate \\u\(String(scalar, radix: 16)) without a low surrogate", at: i - 6)
                    }
                    let low = try hex4(at: i + 2, end: end, field)
                    guard low >= 0xDC00 && low < 0xE000 else {
                        throw error(.invalidJSON, field, "high surrogate followed by \\u\(String(low, radix: 16)), not a low surrogate", at: i)
                    }
                    i += 6
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                } else if scalar >= 0xDC00 && scalar < 0xE000 {
                    throw error(.invalidJSON, field, "lone low surrogate \\u\(String(scalar, radix: 16))", at: i - 6)
                }
                appendUTF8(scalar, to: &out)
            default:
                throw error(.invalidJSON, field, "invalid escape \\\(describeByte(at: i - 1))", at: i - 2)
            }
        }
        guard let text = String(validating: out, as: UTF8.self) else {
            throw error(.invalidUTF8, field, "string is not valid UTF-8", at: start)
        }
        return text
    }

    func hex4(at offset: Int, end: Int, _ field: String?) throws(WorkflowEventValidationError) -> UInt32 {
        guard offset + 4 <= end else { throw error(.invalidJSON, field, "\\u needs four hex digits", at: offset) }
        var value: UInt32 = 0
        for k in 0..<4 {
            guard let digit = hexValue(bytes[offset + k]) else {
                throw error(.invalidJSON, field, "\\u needs four hex digits", at: offset + k)
            }
            value = value << 4 | UInt32(digit)
        }
        return value
    }

    func appendUTF8(_ scalar: UInt32, to out: inout [UInt8]) {
        switch scalar {
        case 0..<0x80:
            out.append(UInt8(scalar))
        case 0x80..<0x800:
            out.append(UInt8(0xC0 | (scalar >> 6)))
            out.append(UInt8(0x80 | (scalar & 0x3F)))
        case 0x800..<0x10000:
            out.append(UInt8(0xE0 | (scalar >> 12)))
            out.append(UInt8(0x80 | ((scalar >> 6) & 0x3F)))
            out.append(UInt8(0x80 | (scalar & 0x3F)))
        default:
            out.append(UInt8(0xF0 | (scalar >> 18)))
            out.append(UInt8(0x80 | ((scalar >> 12) & 0x3F)))
            out.append(UInt8(0x80 | ((scalar >> 6) & 0x3F)))
            out.append(UInt8(0x80 | (scalar & 0x3F)))
        }
    }
}
