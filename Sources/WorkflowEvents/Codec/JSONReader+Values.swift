import Foundation

extension JSONReader {
    // MARK: Numbers

    mutating func readNumber(_ field: String?) throws(WorkflowEventValidationError) -> JSONValue {
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
        case JSONByte.quote:
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
    mutating func readNested(depth: Int, field: String?) throws(WorkflowEventValidationError) -> JSONValue {
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
            guard reader.consume(JSONByte.colon) else { throw reader.syntax("':'", field) }
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
                    if consume(JSONByte.comma) {
                        stack.append(.array(elements))
                        break attaching
                    }
                    guard consume(UInt8(ascii: "]")) else { throw syntax("',' or ']'", field) }
                    completed = .array(elements)
                case .object(var members, let key)?:
                    members[key] = completed
                    skipWhitespace()
                    if consume(JSONByte.comma) {
                        stack.append(.object(members, key: try readKey(&self)))
                        break attaching
                    }
                    guard consume(UInt8(ascii: "}")) else { throw syntax("',' or '}'", field) }
                    completed = .object(members)
                }
            }
        }
    }

    func checkDepth(_ depth: Int, _ field: String?) throws(WorkflowEventValidationError) {
        if depth > WorkflowEvent.maximumNestingDepth {
            throw error(
                .nestingTooDeep, field,
                "arrays and objects nest deeper than \(WorkflowEvent.maximumNestingDepth) levels")
        }
    }

    mutating func readArray(depth: Int, field: String?) throws(WorkflowEventValidationError) -> [JSONValue] {
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
            if consume(JSONByte.comma) { continue }
            if consume(UInt8(ascii: "]")) { return elements }
            throw syntax("',' or ']'", field)
        }
    }

    /// Iterates the members of an object; the reader stands on `{`.
    mutating func readMembers(
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
            guard consume(JSONByte.colon) else { throw syntax("':'", field) }
            skipWhitespace()
            guard index < bytes.count else { throw syntax("a JSON value", field) }
            try body(&self, key)
            skipWhitespace()
            if consume(JSONByte.comma) { continue }
            if consume(UInt8(ascii: "}")) { return }
            throw syntax("',' or '}'", field)
        }
    }

    mutating func readObject(depth: Int, field: String?) throws(WorkflowEventValidationError) -> [String: JSONValue] {
        // Room for the few members events carry, so that the table is allocated once (copied
        // from an empty template: cheaper than asking for a capacity each time).
        var members = emptyObject
        try readMembers(depth: depth, field: field) { reader, key throws(WorkflowEventValidationError) in
            let name = try reader.makeString(key, field)
            members[name] = try reader.readValue(depth: depth, field: field)
        }
        return members
    }
}
