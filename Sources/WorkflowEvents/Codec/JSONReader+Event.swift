import Foundation

extension JSONReader {
    // MARK: The event

    func typeName(_ byte: UInt8?) -> String {
        switch byte {
        case JSONByte.quote: return "a string"
        case UInt8(ascii: "{"): return "an object"
        case UInt8(ascii: "["): return "an array"
        case UInt8(ascii: "t"), UInt8(ascii: "f"): return "a boolean"
        case UInt8(ascii: "n"): return "null"
        case nil: return "nothing"
        default: return "a number"
        }
    }

    mutating func scanRequiredString(
        _ field: String
    ) throws(WorkflowEventValidationError) -> (start: Int, end: Int, hasEscapes: Bool, isASCII: Bool) {
        guard peek() == JSONByte.quote else {
            throw error(.wrongType, field, "expected a string, found \(typeName(peek()))")
        }
        return try scanString(field)
    }

    /// The position among `known` of a string without escapes, when it is one of them.
    func knownIndex(_ scan: (start: Int, end: Int, hasEscapes: Bool, isASCII: Bool), _ known: KnownValues) -> Int? {
        scan.hasEscapes ? nil : known.index(of: UnsafeBufferPointer(rebasing: bytes[scan.start..<scan.end]))
    }

    mutating func readRequiredString(_ field: String) throws(WorkflowEventValidationError) -> (String, Int) {
        let at = index
        guard peek() == JSONByte.quote else {
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
                && (peek() == JSONByte.quote || peek() == UInt8(ascii: "[") || peek() == UInt8(ascii: "-")
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
                guard reader.peek() == JSONByte.quote else {
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

    mutating func readPayload() throws(WorkflowEventValidationError) -> EventPayload {
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

    mutating func readMetadata() throws(WorkflowEventValidationError) -> [String: String] {
        guard peek() == UInt8(ascii: "{") else {
            throw error(.wrongType, "metadata", "expected an object of strings, found \(typeName(peek()))")
        }
        var metadata = emptyMetadata
        try readMembers(depth: 2, field: "metadata") { reader, key throws(WorkflowEventValidationError) in
            let name = try reader.makeString(key, "metadata")
            guard reader.peek() == JSONByte.quote else {
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
let emptyObject = [String: JSONValue](minimumCapacity: 8)
let emptyMetadata = [String: String](minimumCapacity: 4)
