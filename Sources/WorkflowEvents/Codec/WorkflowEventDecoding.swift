public import Foundation

// The decoder made for the contract: one pass over the bytes, no intermediate `Any`, no
// Foundation parser, no error thrown on the valid path. Every byte sequence either decodes
// or throws a `WorkflowEventValidationError`; nesting is bounded, so hostile input cannot
// exhaust the stack.

extension WorkflowEvent {
    /// How deep arrays and objects may nest inside an event before it is rejected.
    public static let maximumNestingDepth = 512

    /// Validates and decodes the contract form of an event (Python's `model_validate_json`).
    ///
    /// - Throws: ``WorkflowEventValidationError`` naming the field and the rule broken.
    public init(validatingJSON bytes: [UInt8]) throws(WorkflowEventValidationError) {
        self = try bytes.withUnsafeBufferPointer { buffer throws(WorkflowEventValidationError) in
            try WorkflowEvent.decode(buffer)
        }
    }

    /// Validates and decodes the contract form of an event held in `Data`.
    public init(validatingJSON data: Data) throws(WorkflowEventValidationError) {
        let result: Result<WorkflowEvent, WorkflowEventValidationError> = data.withUnsafeBytes { raw in
            do throws(WorkflowEventValidationError) {
                return .success(try WorkflowEvent.decode(raw.bindMemory(to: UInt8.self)))
            } catch {
                return .failure(error)
            }
        }
        self = try result.get()
    }

    /// Validates and decodes the contract form of an event from UTF-8 text.
    public init(validatingJSON text: String) throws(WorkflowEventValidationError) {
        try self.init(validatingJSON: Array(text.utf8))
    }

    /// Decodes from a borrowed buffer (a Kafka message's value, without copying it).
    static func decode(_ raw: UnsafeRawBufferPointer) throws(WorkflowEventValidationError) -> WorkflowEvent {
        try decode(raw.bindMemory(to: UInt8.self))
    }

    static func decode(_ buffer: UnsafeBufferPointer<UInt8>) throws(WorkflowEventValidationError) -> WorkflowEvent {
        var reader = JSONReader(buffer)
        return try reader.readEvent()
    }
}

extension JSONValue {
    /// Parses any JSON document into a `JSONValue`, with the same rules as the event decoder.
    public init(parsingJSON bytes: [UInt8]) throws(WorkflowEventValidationError) {
        self = try bytes.withUnsafeBufferPointer { buffer throws(WorkflowEventValidationError) in
            var reader = JSONReader(buffer)
            reader.skipWhitespace()
            let value = try reader.readValue(depth: 0, field: nil)
            try reader.expectEnd()
            return value
        }
    }
}

// MARK: - The reader

private let quote = UInt8(ascii: "\"")
private let backslash = UInt8(ascii: "\\")
private let comma = UInt8(ascii: ",")
private let colon = UInt8(ascii: ":")

/// The fields of the event object, matched on their raw bytes.
private enum EventField {
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
    private let bytes: UnsafeBufferPointer<UInt8>
    private var index: Int = 0

    init(_ bytes: UnsafeBufferPointer<UInt8>) {
        self.bytes = bytes
    }

    // MARK: Errors

    private func error(
        _ code: WorkflowEventValidationError.Code, _ field: String?, _ reason: String, at offset: Int? = nil
    ) -> WorkflowEventValidationError {
        WorkflowEventValidationError(code: code, field: field, byteOffset: offset ?? index, reason: reason)
    }

    private func describeByte(at offset: Int) -> String {
        guard offset < bytes.count else { return "end of input" }
        let byte = bytes[offset]
        if byte >= 0x21 && byte < 0x7F { return "'\(Character(Unicode.Scalar(byte)))'" }
        return "byte 0x\(String(byte, radix: 16, uppercase: true))"
    }

    private func syntax(_ expected: String, _ field: String?) -> WorkflowEventValidationError {
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
    private func peek() -> UInt8? {
        index < bytes.count ? bytes[index] : nil
    }

    @inline(__always)
    private mutating func consume(_ byte: UInt8) -> Bool {
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

    private mutating func expectLiteral(_ literal: StaticString, _ field: String?) throws(WorkflowEventValidationError) {
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
    private mutating func scanString(
        _ field: String?
    ) throws(WorkflowEventValidationError) -> (start: Int, end: Int, hasEscapes: Bool, isASCII: Bool) {
        guard consume(quote) else { throw syntax("a string", field) }
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
            if byte == quote {
                let end = index
                index += 1
                return (start, end, hasEscapes, isASCII)
            }
            if byte == backslash {
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
    private static func attention(_ word: UInt64) -> UInt64 {
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

    private func makeString(
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

    private func unescape(from start: Int, to end: Int, _ field: String?) throws(WorkflowEventValidationError) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(end - start)
        var i = start
        while i < end {
            let byte = bytes[i]
            if byte != backslash {
                out.append(byte)
                i += 1
                continue
            }
            guard i + 1 < end else { throw error(.invalidJSON, field, "unterminated escape", at: i) }
            let escaped = bytes[i + 1]
            i += 2
            switch escaped {
            case UInt8(ascii: "\""): out.append(quote)
            case UInt8(ascii: "\\"): out.append(backslash)
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
                    guard i + 6 <= end, bytes[i] == backslash, bytes[i + 1] == UInt8(ascii: "u") else {
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

    private func hex4(at offset: Int, end: Int, _ field: String?) throws(WorkflowEventValidationError) -> UInt32 {
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

    private func appendUTF8(_ scalar: UInt32, to out: inout [UInt8]) {
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

    // MARK: Numbers

    private mutating func readNumber(_ field: String?) throws(WorkflowEventValidationError) -> JSONValue {
        let start = index
        var negative = false
        if consume(UInt8(ascii: "-")) { negative = true }
        guard let first = peek(), first >= 0x30 && first <= 0x39 else { throw syntax("a digit", field) }
        var magnitude: UInt64 = 0
        var overflow = false
        if first == 0x30 {
            index += 1
        } else {
            while let digit = peek(), digit >= 0x30 && digit <= 0x39 {
                let (times10, o1) = magnitude.multipliedReportingOverflow(by: 10)
                let (sum, o2) = times10.addingReportingOverflow(UInt64(digit - 0x30))
                if o1 || o2 { overflow = true }
                magnitude = sum
                index += 1
            }
        }
        var isInteger = true
        if consume(UInt8(ascii: ".")) {
            isInteger = false
            guard let digit = peek(), digit >= 0x30 && digit <= 0x39 else { throw syntax("a digit after '.'", field) }
            while let digit = peek(), digit >= 0x30 && digit <= 0x39 { index += 1 }
        }
        if let e = peek(), e == UInt8(ascii: "e") || e == UInt8(ascii: "E") {
            isInteger = false
            index += 1
            if let sign = peek(), sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-") { index += 1 }
            guard let digit = peek(), digit >= 0x30 && digit <= 0x39 else { throw syntax("a digit in the exponent", field) }
            while let digit = peek(), digit >= 0x30 && digit <= 0x39 { index += 1 }
        }
        if isInteger && !overflow {
            if negative {
                if magnitude <= UInt64(Int64.max) { return .int(-Int64(magnitude)) }
                if magnitude == UInt64(Int64.max) + 1 { return .int(Int64.min) }
            } else if magnitude <= UInt64(Int64.max) {
                return .int(Int64(magnitude))
            }
        }
        let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
        guard let value = Double(text), value.isFinite else {
            throw error(.invalidJSON, field, "number \(text.prefix(64)) is out of range", at: start)
        }
        return .double(value)
    }

    // MARK: Values

    mutating func readValue(depth: Int, field: String?) throws(WorkflowEventValidationError) -> JSONValue {
        guard let byte = peek() else { throw syntax("a JSON value", field) }
        switch byte {
        case quote:
            return .string(try readString(field))
        case UInt8(ascii: "{"):
            if depth >= Self.recursionDepth { return try readNested(depth: depth + 1, field: field) }
            return .object(try readObject(depth: depth + 1, field: field))
        case UInt8(ascii: "["):
            if depth >= Self.recursionDepth { return try readNested(depth: depth + 1, field: field) }
            return .array(try readArray(depth: depth + 1, field: field))
        case UInt8(ascii: "t"):
            try expectLiteral("true", field)
            return .bool(true)
        case UInt8(ascii: "f"):
            try expectLiteral("false", field)
            return .bool(false)
        case UInt8(ascii: "n"):
            try expectLiteral("null", field)
            return .null
        case UInt8(ascii: "-"), 0x30...0x39:
            return try readNumber(field)
        default:
            throw syntax("a JSON value", field)
        }
    }

    /// How deep values are read by recursion (fast, a few stack frames a level); deeper
    /// containers are read by `readNested`, whose stack is an array, so that nesting up to
    /// `maximumNestingDepth` fits a thread with a small stack (512 KB, in a debug build).
    static let recursionDepth = 24

    /// Reads the array or object at `index`, `depth` levels deep, and everything nested in
    /// it, without recursion.
    private mutating func readNested(depth: Int, field: String?) throws(WorkflowEventValidationError) -> JSONValue {
        enum Open {
            case array([JSONValue])
            case object([String: JSONValue], key: String)
        }
        var stack: [Open] = []
        /// After a member's key: the `:` and the start of its value.
        func readKey(_ reader: inout JSONReader) throws(WorkflowEventValidationError) -> String {
            reader.skipWhitespace()
            let key = try reader.scanString(field)
            let name = try reader.makeString(key, field)
            reader.skipWhitespace()
            guard reader.consume(colon) else { throw reader.syntax("':'", field) }
            reader.skipWhitespace()
            guard reader.index < reader.bytes.count else { throw reader.syntax("a JSON value", field) }
            return name
        }
        while true {
            // A value: a container opens (and its first value is read next), or is complete.
            skipWhitespace()
            var completed: JSONValue
            switch peek() {
            case UInt8(ascii: "["):
                try checkDepth(depth + stack.count, field)
                index += 1
                skipWhitespace()
                if consume(UInt8(ascii: "]")) {
                    completed = .array([])
                } else {
                    stack.append(.array([]))
                    continue
                }
            case UInt8(ascii: "{"):
                try checkDepth(depth + stack.count, field)
                index += 1
                skipWhitespace()
                if consume(UInt8(ascii: "}")) {
                    completed = .object([:])
                } else {
                    stack.append(.object([:], key: try readKey(&self)))
                    continue
                }
            default:
                completed = try readValue(depth: depth + stack.count, field: field)
            }
            // The completed value goes into its container; a container that closes is
            // completed in turn.
            attaching: while true {
                switch stack.popLast() {
                case nil:
                    return completed
                case .array(var elements)?:
                    elements.append(completed)
                    skipWhitespace()
                    if consume(comma) {
                        stack.append(.array(elements))
                        break attaching
                    }
                    guard consume(UInt8(ascii: "]")) else { throw syntax("',' or ']'", field) }
                    completed = .array(elements)
                case .object(var members, let key)?:
                    members[key] = completed
                    skipWhitespace()
                    if consume(comma) {
                        stack.append(.object(members, key: try readKey(&self)))
                        break attaching
                    }
                    guard consume(UInt8(ascii: "}")) else { throw syntax("',' or '}'", field) }
                    completed = .object(members)
                }
            }
        }
    }

    private func checkDepth(_ depth: Int, _ field: String?) throws(WorkflowEventValidationError) {
        if depth > WorkflowEvent.maximumNestingDepth {
            throw error(
                .nestingTooDeep, field,
                "arrays and objects nest deeper than \(WorkflowEvent.maximumNestingDepth) levels")
        }
    }

    private mutating func readArray(depth: Int, field: String?) throws(WorkflowEventValidationError) -> [JSONValue] {
        try checkDepth(depth, field)
        index += 1  // [
        var elements: [JSONValue] = []
        skipWhitespace()
        if consume(UInt8(ascii: "]")) { return elements }
        elements.reserveCapacity(4)
        while true {
            skipWhitespace()
            elements.append(try readValue(depth: depth, field: field))
            skipWhitespace()
            if consume(comma) { continue }
            if consume(UInt8(ascii: "]")) { return elements }
            throw syntax("',' or ']'", field)
        }
    }

    /// Iterates the members of an object; the reader stands on `{`.
    private mutating func readMembers(
        depth: Int, field: String?,
        _ body: (inout JSONReader, _ key: (start: Int, end: Int, hasEscapes: Bool, isASCII: Bool)) throws(WorkflowEventValidationError) -> Void
    ) throws(WorkflowEventValidationError) {
        try checkDepth(depth, field)
        guard consume(UInt8(ascii: "{")) else { throw syntax("'{'", field) }
        skipWhitespace()
        if consume(UInt8(ascii: "}")) { return }
        while true {
            skipWhitespace()
            let key = try scanString(field)
            skipWhitespace()
            guard consume(colon) else { throw syntax("':'", field) }
            skipWhitespace()
            guard index < bytes.count else { throw syntax("a JSON value", field) }
            try body(&self, key)
            skipWhitespace()
            if consume(comma) { continue }
            if consume(UInt8(ascii: "}")) { return }
            throw syntax("',' or '}'", field)
        }
    }

    private mutating func readObject(depth: Int, field: String?) throws(WorkflowEventValidationError) -> [String: JSONValue] {
        // Room for the few members events carry, so that the table is allocated once (copied
        // from an empty template: cheaper than asking for a capacity each time).
        var members = emptyObject
        try readMembers(depth: depth, field: field) { reader, key throws(WorkflowEventValidationError) in
            let name = try reader.makeString(key, field)
            members[name] = try reader.readValue(depth: depth, field: field)
        }
        return members
    }

    // MARK: The event

    private func typeName(_ byte: UInt8?) -> String {
        switch byte {
        case quote: return "a string"
        case UInt8(ascii: "{"): return "an object"
        case UInt8(ascii: "["): return "an array"
        case UInt8(ascii: "t"), UInt8(ascii: "f"): return "a boolean"
        case UInt8(ascii: "n"): return "null"
        case nil: return "nothing"
        default: return "a number"
        }
    }

    private mutating func scanRequiredString(
        _ field: String
    ) throws(WorkflowEventValidationError) -> (start: Int, end: Int, hasEscapes: Bool, isASCII: Bool) {
        guard peek() == quote else {
            throw error(.wrongType, field, "expected a string, found \(typeName(peek()))")
        }
        return try scanString(field)
    }

    /// The position among `known` of a string without escapes, when it is one of them.
    private func knownIndex(_ scan: (start: Int, end: Int, hasEscapes: Bool, isASCII: Bool), _ known: KnownValues) -> Int? {
        scan.hasEscapes ? nil : known.index(of: UnsafeBufferPointer(rebasing: bytes[scan.start..<scan.end]))
    }

    private mutating func readRequiredString(_ field: String) throws(WorkflowEventValidationError) -> (String, Int) {
        let at = index
        guard peek() == quote else {
            throw error(.wrongType, field, "expected a string, found \(typeName(peek()))")
        }
        return (try readString(field), at)
    }

    mutating func readEvent() throws(WorkflowEventValidationError) -> WorkflowEvent {
        if bytes.isEmpty {
            throw error(.emptyMessage, nil, "the message value is empty", at: 0)
        }
        skipWhitespace()
        guard peek() == UInt8(ascii: "{") else {
            if index < bytes.count
                && (peek() == quote || peek() == UInt8(ascii: "[") || peek() == UInt8(ascii: "-")
                    || peek() == UInt8(ascii: "t") || peek() == UInt8(ascii: "f") || peek() == UInt8(ascii: "n")
                    || (peek()! >= 0x30 && peek()! <= 0x39))
            {
                // Valid JSON of another type is "not an object"; anything else is a syntax error.
                let saved = index
                var probe = self
                if (try? probe.readValue(depth: 0, field: nil)) != nil, (try? probe.expectEnd()) != nil {
                    throw error(.notAnObject, nil, "expected a JSON object, found \(typeName(peek()))", at: saved)
                }
            }
            throw syntax("a JSON object", nil)
        }

        var eventID: UUID?
        var eventType: EventType?
        var source: EventSource?
        var workflowID: String?
        var workflowRunID: String?
        var timestamp: Date?
        var payload: EventPayload?
        var metadata: [String: String] = [:]
        var schemaVersion = 1

        try readMembers(depth: 1, field: nil) { reader, key throws(WorkflowEventValidationError) in
            let slot: EventField
            if key.hasEscapes {
                slot = EventField.match(try reader.makeString(key, nil))
            } else {
                slot = EventField.match(UnsafeBufferPointer(rebasing: reader.bytes[key.start..<key.end]))
            }
            switch slot {
            case .eventID:
                let at = reader.index
                let scan = try reader.scanRequiredString("event_id")
                let id: UUID?
                if scan.hasEscapes {
                    id = parseUUIDString(try reader.makeString(scan, "event_id"))
                } else {
                    id = parseUUID(UnsafeBufferPointer(rebasing: reader.bytes[scan.start..<scan.end]))
                }
                guard let id else {
                    let text = try reader.makeString(scan, "event_id")
                    throw reader.error(.invalidValue, "event_id", "expected a UUID in canonical text form, found \"\(text.prefix(64))\"", at: at)
                }
                eventID = id
            case .eventType:
                let scan = try reader.scanRequiredString("event_type")
                // A known value shares the constant's storage: no string is built.
                if let known = reader.knownIndex(scan, knownEventTypes) {
                    eventType = EventType.allKnown[known]
                } else {
                    eventType = EventType(rawValue: try reader.makeString(scan, "event_type"))
                }
            case .source:
                let scan = try reader.scanRequiredString("source")
                if let known = reader.knownIndex(scan, knownEventSources) {
                    source = EventSource.allKnown[known]
                } else {
                    source = EventSource(rawValue: try reader.makeString(scan, "source"))
                }
            case .workflowID:
                let (text, at) = try reader.readRequiredString("workflow_id")
                guard !text.isEmpty else {
                    throw reader.error(.invalidValue, "workflow_id", "must not be empty", at: at)
                }
                workflowID = text
            case .workflowRunID:
                if reader.peek() == UInt8(ascii: "n") {
                    try reader.expectLiteral("null", "workflow_run_id")
                    workflowRunID = nil
                } else {
                    workflowRunID = try reader.readRequiredString("workflow_run_id").0
                }
            case .timestamp:
                let at = reader.index
                guard reader.peek() == quote else {
                    throw reader.error(.wrongType, "timestamp", "expected an RFC 3339 date-time string, found \(reader.typeName(reader.peek()))")
                }
                let scan = try reader.scanString("timestamp")
                let parsed: Date?
                if scan.hasEscapes || !scan.isASCII {
                    parsed = parseRFC3339(Array(try reader.makeString(scan, "timestamp").utf8))
                } else {
                    parsed = parseRFC3339(UnsafeBufferPointer(rebasing: reader.bytes[scan.start..<scan.end]))
                }
                guard let parsed else {
                    let text = try reader.makeString(scan, "timestamp")
                    throw reader.error(
                        .invalidValue, "timestamp",
                        "expected an RFC 3339 date-time with 'Z' or a numeric offset, found \"\(text.prefix(64))\"", at: at)
                }
                timestamp = parsed
            case .payload:
                payload = try reader.readPayload()
            case .metadata:
                metadata = try reader.readMetadata()
            case .schemaVersion:
                let at = reader.index
                guard let byte = reader.peek(), byte == UInt8(ascii: "-") || (byte >= 0x30 && byte <= 0x39) else {
                    throw reader.error(.wrongType, "schema_version", "expected an integer, found \(reader.typeName(reader.peek()))")
                }
                let value = try reader.readNumber("schema_version")
                guard case .int(let version) = value, let small = Int(exactly: version) else {
                    throw reader.error(.wrongType, "schema_version", "expected an integer", at: at)
                }
                schemaVersion = small
            case .unknown:
                // Its name is checked too (a key that is not UTF-8 breaks the contract), and
                // named in an error, so that a broken unknown field is found at once.
                let name = String(try reader.makeString(key, nil).prefix(64))
                _ = try reader.readValue(depth: 1, field: name)
            }
        }
        try expectEnd()

        func missing(_ name: String) -> WorkflowEventValidationError {
            WorkflowEventValidationError(code: .missingField, field: name, byteOffset: nil, reason: "required field is missing")
        }
        guard let eventID else { throw missing("event_id") }
        guard let eventType else { throw missing("event_type") }
        guard let source else { throw missing("source") }
        guard let workflowID else { throw missing("workflow_id") }
        guard let timestamp else { throw missing("timestamp") }
        guard let payload else { throw missing("payload") }
        return WorkflowEvent(
            eventID: eventID, eventType: eventType, source: source,
            workflowID: workflowID, workflowRunID: workflowRunID, timestamp: timestamp, payload: payload,
            metadata: metadata, schemaVersion: schemaVersion)
    }

    private mutating func readPayload() throws(WorkflowEventValidationError) -> EventPayload {
        guard peek() == UInt8(ascii: "{") else {
            throw error(.wrongType, "payload", "expected an object {\"data\": {...}}, found \(typeName(peek()))")
        }
        var data: [String: JSONValue] = [:]
        var others: [String: JSONValue] = [:]
        try readMembers(depth: 2, field: "payload") { reader, key throws(WorkflowEventValidationError) in
            var isData = false
            if key.hasEscapes {
                isData = try reader.makeString(key, "payload") == "data"
            } else {
                isData = key.end - key.start == 4 && memcmp(reader.bytes.baseAddress! + key.start, "data", 4) == 0
            }
            if isData {
                guard reader.peek() == UInt8(ascii: "{") else {
                    throw reader.error(.wrongType, "payload.data", "expected an object, found \(reader.typeName(reader.peek()))")
                }
                data = try reader.readObject(depth: 3, field: "payload.data")
            } else {
                let name = try reader.makeString(key, "payload")
                others[name] = try reader.readValue(depth: 2, field: "payload.\(name)")
            }
        }
        return EventPayload(data: data, additionalFields: others)
    }

    private mutating func readMetadata() throws(WorkflowEventValidationError) -> [String: String] {
        guard peek() == UInt8(ascii: "{") else {
            throw error(.wrongType, "metadata", "expected an object of strings, found \(typeName(peek()))")
        }
        var metadata = emptyMetadata
        try readMembers(depth: 2, field: "metadata") { reader, key throws(WorkflowEventValidationError) in
            let name = try reader.makeString(key, "metadata")
            guard reader.peek() == quote else {
                throw reader.error(.wrongType, "metadata.\(name)", "expected a string, found \(reader.typeName(reader.peek()))")
            }
            // The member's path is built only for an error: on every value it would cost an
            // allocation.
            do throws(WorkflowEventValidationError) {
                metadata[name] = try reader.readString(nil)
            } catch {
                var located = error
                located.field = "metadata.\(name)"
                throw located
            }
        }
        return metadata
    }
}

// MARK: - Templates

/// Empty tables with room for a few members; a decoded object starts as a copy.
private let emptyObject = [String: JSONValue](minimumCapacity: 8)
private let emptyMetadata = [String: String](minimumCapacity: 4)

// MARK: - Known values

/// The contract's known values of an extensible string type, matched on raw bytes.
struct KnownValues: Sendable {
    private let entries: [[UInt8]]

    init(_ values: [String]) {
        entries = values.map { Array($0.utf8) }
    }

    /// The position of `text` among the values.
    func index(of text: UnsafeBufferPointer<UInt8>) -> Int? {
        for (index, entry) in entries.enumerated() where entry.count == text.count {
            let equal = entry.withUnsafeBufferPointer { memcmp($0.baseAddress!, text.baseAddress!, text.count) == 0 }
            if equal { return index }
        }
        return nil
    }
}

private let knownEventTypes = KnownValues(EventType.allKnown.map(\.rawValue))
private let knownEventSources = KnownValues(EventSource.allKnown.map(\.rawValue))

// MARK: - UUID

/// The value of a hex digit, without branches (digits and letters come mixed, so branches
/// would be mispredicted); `bad` gets a bit when `byte` is not a hex digit.
@inline(__always)
private func hexNibble(_ byte: UInt8, _ bad: inout UInt8) -> UInt8 {
    let digit = byte &- 0x30
    let letter = (byte | 0x20) &- 0x61
    let isDigit: UInt8 = digit < 10 ? 1 : 0
    let isLetter: UInt8 = letter < 6 ? 1 : 0
    bad |= 1 &- (isDigit | isLetter)
    return isDigit == 1 ? digit : letter &+ 10
}

/// The value of a hex digit, or nil.
@inline(__always)
private func hexValue(_ byte: UInt8) -> UInt8? {
    var bad: UInt8 = 0
    let value = hexNibble(byte, &bad)
    return bad == 0 ? value : nil
}

func parseUUIDString(_ text: String) -> UUID? {
    var text = text
    return text.withUTF8 { parseUUID($0) }
}

/// Parses the canonical 8-4-4-4-12 form, in either case.
func parseUUID(_ text: UnsafeBufferPointer<UInt8>) -> UUID? {
    guard text.count == 36, let p = text.baseAddress, p[8] == UInt8(ascii: "-"), p[13] == UInt8(ascii: "-"),
        p[18] == UInt8(ascii: "-"), p[23] == UInt8(ascii: "-")
    else { return nil }
    var bad: UInt8 = 0
    @inline(__always) func byte(_ at: Int) -> UInt8 {
        hexNibble(p[at], &bad) << 4 | hexNibble(p[at + 1], &bad)
    }
    let uuid: uuid_t = (
        byte(0), byte(2), byte(4), byte(6), byte(9), byte(11), byte(14), byte(16),
        byte(19), byte(21), byte(24), byte(26), byte(28), byte(30), byte(32), byte(34)
    )
    return bad == 0 ? UUID(uuid: uuid) : nil
}

func parseUUID(_ text: [UInt8]) -> UUID? {
    text.withUnsafeBufferPointer { parseUUID($0) }
}
