public import WorkflowEvents

/// Message values that break the event contract, each with the error a consumer must
/// report, for testing that bad input is refused clearly and nothing else is lost.
public enum HostileInputs {
    /// One message value and what validating it must give.
    public struct Case: Sendable {
        /// What the value is, in a few words.
        public let name: String
        /// The message value; nil is a null value (a tombstone).
        public let value: [UInt8]?
        /// The error code validation must report; nil when the value is a valid event.
        public let expectedCode: WorkflowEventValidationError.Code?
        /// The field the error must name, if any.
        public let expectedField: String?

        /// A case; `expectedCode` nil means the value is valid.
        public init(_ name: String, _ value: [UInt8]?, _ expectedCode: WorkflowEventValidationError.Code?, _ expectedField: String?) {
            self.name = name
            self.value = value
            self.expectedCode = expectedCode
            self.expectedField = expectedField
        }
    }

    private static let base: [String: String] = [
        "event_id": "\"6f1c2b9e-8d4a-4f7b-9c1e-0a2b3c4d5e6f\"", "event_type": "\"workflow.started\"",
        "source": "\"jenkins\"", "workflow_id": "\"w\"", "timestamp": "\"2026-11-28T16:17:59Z\"",
        "payload": "{\"data\":{}}",
    ]

    /// A valid event document with some fields replaced (a nil value removes the field).
    public static func document(_ changes: [String: String?]) -> [UInt8] {
        var fields = base
        for (key, value) in changes { fields[key] = value }
        let body = fields.keys.sorted().map { "\"\($0)\":\(fields[$0]!)" }.joined(separator: ",")
        return Array("{\(body)}".utf8)
    }

    /// Documents that keep or break each rule of the contract, one rule each.
    public static let contractRules: [Case] = [
        Case("valid", document([:]), nil, nil),
        Case("upper-case UUID", document(["event_id": "\"6F1C2B9E-8D4A-4F7B-9C1E-0A2B3C4D5E6F\""]), nil, nil),
        Case("offset timestamp, 9 digits", document(["timestamp": "\"2026-11-28T16:17:59.123456789+02:00\""]), nil, nil),
        Case("unknown type and source kept", document(["event_type": "\"workflow.paused\"", "source": "\"buildkite\""]), nil, nil),
        Case("null run id", document(["workflow_run_id": "null"]), nil, nil),
        Case("unknown field ignored", document(["extra": "[1,{\"a\":null}]"]), nil, nil),
        Case("absent data is empty", document(["payload": "{}"]), nil, nil),
        Case("missing event_id", document(["event_id": nil]), .missingField, "event_id"),
        Case("missing event_type", document(["event_type": nil]), .missingField, "event_type"),
        Case("missing source", document(["source": nil]), .missingField, "source"),
        Case("missing workflow_id", document(["workflow_id": nil]), .missingField, "workflow_id"),
        Case("missing timestamp", document(["timestamp": nil]), .missingField, "timestamp"),
        Case("missing payload", document(["payload": nil]), .missingField, "payload"),
        Case("bad UUID", document(["event_id": "\"not-a-uuid\""]), .invalidValue, "event_id"),
        Case("UUID without hyphens", document(["event_id": "\"6f1c2b9e8d4a4f7b9c1e0a2b3c4d5e6f\""]), .invalidValue, "event_id"),
        Case("timestamp without zone", document(["timestamp": "\"2026-11-28T16:17:59\""]), .invalidValue, "timestamp"),
        Case("10 fractional digits", document(["timestamp": "\"2026-11-28T16:17:59.1234567890Z\""]), .invalidValue, "timestamp"),
        Case("February 30th", document(["timestamp": "\"2026-02-30T16:17:59Z\""]), .invalidValue, "timestamp"),
        Case("numeric timestamp", document(["timestamp": "1764346679"]), .wrongType, "timestamp"),
        Case("empty workflow id", document(["workflow_id": "\"\""]), .invalidValue, "workflow_id"),
        Case("numeric workflow id", document(["workflow_id": "7"]), .wrongType, "workflow_id"),
        Case("numeric event type", document(["event_type": "3"]), .wrongType, "event_type"),
        Case("run id not a string", document(["workflow_run_id": "12"]), .wrongType, "workflow_run_id"),
        Case("data not an object", document(["payload": "{\"data\":[1]}"]), .wrongType, "payload.data"),
        Case("payload not an object", document(["payload": "\"x\""]), .wrongType, "payload"),
        Case("metadata not an object", document(["metadata": "[]"]), .wrongType, "metadata"),
        Case("metadata value not a string", document(["metadata": "{\"owner\":1}"]), .wrongType, "metadata.owner"),
        Case("metadata value with a bad escape", document(["metadata": "{\"owner\":\"a\\x\"}"]), .invalidJSON, "metadata.owner"),
        Case("fractional schema version", document(["schema_version": "1.5"]), .wrongType, "schema_version"),
        Case("not JSON", Array("hello".utf8), .invalidJSON, nil),
        Case("truncated", Array("{\"event_id\":".utf8), .invalidJSON, nil),
        Case("an array", Array("[1,2]".utf8), .notAnObject, nil),
        Case("trailing bytes", document([:]) + Array(" x".utf8), .invalidJSON, nil),
        Case("invalid UTF-8", document(["workflow_id": "\"w\u{FFFD}\""]).map { $0 == 0xEF ? 0xFF : $0 }, .invalidUTF8, "workflow_id"),
        Case("lone surrogate", document(["workflow_id": "\"\\ud800\""]), .invalidJSON, "workflow_id"),
        Case("raw control character", document(["workflow_id": "\"a\u{01}b\""]), .invalidJSON, "workflow_id"),
    ]

    /// Values at the edges: empty, enormous, deeply nested, not text at all.
    public static let extremes: [Case] = [
        Case("empty value", [], .emptyMessage, nil),
        Case("bytes that are not JSON", [0x00, 0xFF, 0x13, 0x37, 0x80], .invalidJSON, nil),
        Case("a bare JSON null", Array("null".utf8), .notAnObject, nil),
        Case(
            "900 KB value", document(["payload": "{\"data\":{\"blob\":\"" + String(repeating: "x", count: 900_000) + "\"},\"x\":}"]),
            .invalidJSON, "payload.x"),
        Case(
            "200,000-deep array", Array(String(repeating: "[", count: 200_000).utf8) + Array(String(repeating: "]", count: 200_000).utf8),
            .invalidJSON, nil),
        Case(
            "200,000-deep nesting in the payload",
            document(["payload": "{\"data\":{\"a\":" + String(repeating: "[", count: 200_000) + String(repeating: "]", count: 200_000) + "}}"]),
            .nestingTooDeep, "payload.data"),
        Case(
            "200,000-deep nesting in an unknown field",
            document(["extra": "{\"a\":" + String(repeating: "[", count: 200_000) + String(repeating: "]", count: 200_000) + "}"]), .nestingTooDeep,
            "extra"),
        Case(
            "invalid UTF-8 in a payload key", Array("{\"payload\":{\"data\":{\"".utf8) + [0xC3, 0x28] + Array("\":1}}}".utf8), .invalidUTF8,
            "payload.data"),
    ]
}
