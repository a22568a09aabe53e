import Foundation

// Writes the contract form of an event: the keys in the contract's order, `workflow_run_id`
// as null when absent (as Pydantic's `model_dump_json` does), timestamps in UTC with
// microseconds, object keys sorted so that the same event always gives the same bytes.

/// Why an event could not be written as JSON.
public struct WorkflowEventEncodingError: Error, Sendable, CustomStringConvertible {
    /// The path of the value that has no JSON form (`payload.data.ratio`).
    public var field: String
    /// Why the value cannot be written.
    public var reason: String

    /// The field and the reason, in one sentence.
    public var description: String { "cannot encode workflow event: field '\(field)': \(reason)" }
}

extension WorkflowEvent {
    /// The contract form of this event, as UTF-8 bytes.
    ///
    /// - Throws: ``WorkflowEventEncodingError`` when the payload holds a number that JSON
    ///   cannot express (NaN or an infinity).
    public func jsonBytes() throws(WorkflowEventEncodingError) -> [UInt8] {
        var writer = JSONWriter()
        try writer.writeEvent(self)
        return writer.bytes
    }

    /// The contract form of this event, as a string.
    public func jsonString() throws(WorkflowEventEncodingError) -> String {
        String(decoding: try jsonBytes(), as: UTF8.self)
    }
}

extension JSONValue {
    /// This value as compact JSON, object keys sorted.
    public func jsonBytes() throws(WorkflowEventEncodingError) -> [UInt8] {
        var writer = JSONWriter()
        try writer.write(self, path: "$")
        return writer.bytes
    }
}

extension JSONValue: CustomStringConvertible {
    /// This value as compact JSON (`"text"`, `12`, `{"a":[true,null]}`); a non-finite
    /// number, which JSON cannot hold, shows as `nan` or `inf`.
    public var description: String {
        switch self {
        case .double(let number) where !number.isFinite: return String(number)
        default: return (try? String(decoding: jsonBytes(), as: UTF8.self)) ?? "?"
        }
    }
}

private let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

struct JSONWriter {
    var bytes: [UInt8] = []

    init() {
        bytes.reserveCapacity(512)
    }

    @inline(__always)
    mutating func raw(_ text: StaticString) {
        bytes.append(contentsOf: UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    mutating func string(_ text: String) {
        bytes.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): raw("\\\"")
            case UInt8(ascii: "\\"): raw("\\\\")
            case 0x0A: raw("\\n")
            case 0x0D: raw("\\r")
            case 0x09: raw("\\t")
            case 0x08: raw("\\b")
            case 0x0C: raw("\\f")
            case 0..<0x20:
                raw("\\u00")
                bytes.append(hexDigits[Int(byte >> 4)])
                bytes.append(hexDigits[Int(byte & 0xF)])
            default:
                bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    mutating func integer(_ value: Int64) {
        bytes.append(contentsOf: String(value).utf8)
    }

    mutating func uuid(_ id: UUID) {
        bytes.append(UInt8(ascii: "\""))
        withUnsafeBytes(of: id.uuid) { raw in
            for (index, byte) in raw.enumerated() {
                if index == 4 || index == 6 || index == 8 || index == 10 { bytes.append(UInt8(ascii: "-")) }
                bytes.append(hexDigits[Int(byte >> 4)])
                bytes.append(hexDigits[Int(byte & 0xF)])
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    mutating func write(_ value: JSONValue, path: @autoclosure () -> String) throws(WorkflowEventEncodingError) {
        switch value {
        case .null: raw("null")
        case .bool(let flag): flag ? raw("true") : raw("false")
        case .int(let number): integer(number)
        case .double(let number):
            guard number.isFinite else {
                throw WorkflowEventEncodingError(field: path(), reason: "\(number) has no JSON form")
            }
            bytes.append(contentsOf: number.description.utf8)
        case .string(let text): string(text)
        case .array(let elements):
            bytes.append(UInt8(ascii: "["))
            for (index, element) in elements.enumerated() {
                if index > 0 { bytes.append(UInt8(ascii: ",")) }
                try write(element, path: "\(path())[\(index)]")
            }
            bytes.append(UInt8(ascii: "]"))
        case .object(let members):
            try object(members, path: path())
        }
    }

    mutating func object(_ members: [String: JSONValue], path: String) throws(WorkflowEventEncodingError) {
        bytes.append(UInt8(ascii: "{"))
        for (index, key) in members.keys.sorted().enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            string(key)
            bytes.append(UInt8(ascii: ":"))
            try write(members[key]!, path: "\(path).\(key)")
        }
        bytes.append(UInt8(ascii: "}"))
    }

    mutating func writeEvent(_ event: WorkflowEvent) throws(WorkflowEventEncodingError) {
        raw("{\"event_id\":")
        uuid(event.eventID)
        raw(",\"event_type\":")
        string(event.eventType.rawValue)
        raw(",\"source\":")
        string(event.source.rawValue)
        raw(",\"workflow_id\":")
        string(event.workflowID)
        raw(",\"workflow_run_id\":")
        if let run = event.workflowRunID { string(run) } else { raw("null") }
        raw(",\"timestamp\":\"")
        appendRFC3339(event.timestamp, to: &bytes)
        raw("\",\"payload\":{\"data\":")
        try object(event.payload.data, path: "payload.data")
        for key in event.payload.additionalFields.keys.sorted() where key != "data" {
            bytes.append(UInt8(ascii: ","))
            string(key)
            bytes.append(UInt8(ascii: ":"))
            try write(event.payload.additionalFields[key]!, path: "payload.\(key)")
        }
        raw("},\"metadata\":{")
        for (index, key) in event.metadata.keys.sorted().enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            string(key)
            bytes.append(UInt8(ascii: ":"))
            string(event.metadata[key]!)
        }
        raw("},\"schema_version\":")
        integer(Int64(event.schemaVersion))
        bytes.append(UInt8(ascii: "}"))
    }
}
