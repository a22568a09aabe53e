import Foundation
import Testing
import WorkflowEvents
import WorkflowEventsTesting

/// The event model and its decoder, fed from records that went through a Kafka broker.
@Suite("Event model and contract codec")
struct EventModelTests {
    static let contractExample = """
        {"event_id":"6f1c2b9e-8d4a-4f7b-9c1e-0a2b3c4d5e6f","event_type":"workflow.completed",
         "source":"github_actions","workflow_id":"build-and-test","workflow_run_id":"run-8812",
         "timestamp":"2026-11-28T16:17:59.123456Z",
         "payload":{"data":{"status":"success","duration_ms":48211,"attempt":1,"tags":["ci","main"]}},
         "metadata":{"correlation_id":"c-42"}}
        """

    /// Writes raw values to a new topic and reads them back as records, without a group.
    static func roundTrip(_ values: [[UInt8]?]) async throws -> [ConsumerRecord] {
        let cluster = try MockKafkaCluster()
        defer { cluster.shutdown() }
        try cluster.createTopic("raw", partitions: 1)
        try await produceRecords(values, to: "raw", on: cluster)
        let consumer = try WorkflowEventConsumer(
            configuration: .init(bootstrapServers: cluster.bootstrapServers, maxPollRecords: 10_000))
        try await consumer.subscribe(["raw"])
        var records: [ConsumerRecord] = []
        let deadline = ContinuousClock.now.advanced(by: .seconds(20))
        while records.count < values.count && ContinuousClock.now < deadline {
            records += try await consumer.poll(timeout: .milliseconds(500)).values.flatMap { $0 }
        }
        await consumer.close()
        #expect(records.count == values.count)
        return records.sorted { $0.offset < $1.offset }
    }

    @Test("the contract's example decodes field by field")
    func contractExample() async throws {
        let records = try await Self.roundTrip([Array(Self.contractExample.utf8)])
        let event = try #require(try records.first?.event())
        #expect(event.eventID == UUID(uuidString: "6F1C2B9E-8D4A-4F7B-9C1E-0A2B3C4D5E6F"))
        #expect(event.eventType == .workflowCompleted)
        #expect(event.source == .githubActions)
        #expect(event.workflowID == "build-and-test")
        #expect(event.workflowRunID == "run-8812")
        #expect(abs(event.timestamp.timeIntervalSince1970 - 1_795_882_679.123456) < 1e-6)
        #expect(event.payload.data["status"] == "success")
        #expect(event.payload.data["duration_ms"] == .int(48211))
        #expect(event.payload.data["tags"] == ["ci", "main"])
        #expect(event.metadata == ["correlation_id": "c-42"])
        #expect(event.schemaVersion == 1)
    }

    static let base: [String: String] = [
        "event_id": "\"6f1c2b9e-8d4a-4f7b-9c1e-0a2b3c4d5e6f\"", "event_type": "\"workflow.started\"",
        "source": "\"jenkins\"", "workflow_id": "\"w\"", "timestamp": "\"2026-11-28T16:17:59Z\"",
        "payload": "{\"data\":{}}",
    ]

    static func document(_ changes: [String: String?]) -> [UInt8] {
        var fields = base
        for (key, value) in changes { fields[key] = value }
        let body = fields.keys.sorted().map { "\"\($0)\":\(fields[$0]!)" }.joined(separator: ",")
        return Array("{\(body)}".utf8)
    }

    /// Each document with the code and field its error must name (nil code: valid).
    static let cases: [(String, [UInt8], WorkflowEventValidationError.Code?, String?)] = [
        ("valid", document([:]), nil, nil),
        ("upper-case UUID", document(["event_id": "\"6F1C2B9E-8D4A-4F7B-9C1E-0A2B3C4D5E6F\""]), nil, nil),
        ("offset timestamp, 9 digits", document(["timestamp": "\"2026-11-28T16:17:59.123456789+02:00\""]), nil, nil),
        ("unknown type and source kept", document(["event_type": "\"workflow.paused\"", "source": "\"buildkite\""]), nil, nil),
        ("null run id", document(["workflow_run_id": "null"]), nil, nil),
        ("unknown field ignored", document(["extra": "[1,{\"a\":null}]"]), nil, nil),
        ("absent data is empty", document(["payload": "{}"]), nil, nil),
        ("missing event_id", document(["event_id": nil]), .missingField, "event_id"),
        ("missing timestamp", document(["timestamp": nil]), .missingField, "timestamp"),
        ("missing payload", document(["payload": nil]), .missingField, "payload"),
        ("bad UUID", document(["event_id": "\"not-a-uuid\""]), .invalidValue, "event_id"),
        ("UUID without hyphens", document(["event_id": "\"6f1c2b9e8d4a4f7b9c1e0a2b3c4d5e6f\""]), .invalidValue, "event_id"),
        ("timestamp without zone", document(["timestamp": "\"2026-11-28T16:17:59\""]), .invalidValue, "timestamp"),
        ("10 fractional digits", document(["timestamp": "\"2026-11-28T16:17:59.1234567890Z\""]), .invalidValue, "timestamp"),
        ("February 30th", document(["timestamp": "\"2026-02-30T16:17:59Z\""]), .invalidValue, "timestamp"),
        ("numeric timestamp", document(["timestamp": "1764346679"]), .wrongType, "timestamp"),
        ("empty workflow id", document(["workflow_id": "\"\""]), .invalidValue, "workflow_id"),
        ("numeric workflow id", document(["workflow_id": "7"]), .wrongType, "workflow_id"),
        ("data not an object", document(["payload": "{\"data\":[1]}"]), .wrongType, "payload.data"),
        ("payload not an object", document(["payload": "\"x\""]), .wrongType, "payload"),
        ("metadata value not a string", document(["metadata": "{\"owner\":1}"]), .wrongType, "metadata.owner"),
        ("fractional schema version", document(["schema_version": "1.5"]), .wrongType, "schema_version"),
        ("not JSON", Array("hello".utf8), .invalidJSON, nil),
        ("truncated", Array("{\"event_id\":".utf8), .invalidJSON, nil),
        ("an array", Array("[1,2]".utf8), .notAnObject, nil),
        ("trailing bytes", document([:]) + Array(" x".utf8), .invalidJSON, nil),
        ("invalid UTF-8", document(["workflow_id": "\"w\u{FFFD}\""]).map { $0 == 0xEF ? 0xFF : $0 }, .invalidUTF8, "workflow_id"),
        ("lone surrogate", document(["workflow_id": "\"\\ud800\""]), .invalidJSON, "workflow_id"),
        ("raw control character", document(["workflow_id": "\"a\u{01}b\""]), .invalidJSON, "workflow_id"),
    ]

    @Test("each rule of the contract is enforced, naming the field")
    func rules() async throws {
        let records = try await Self.roundTrip(Self.cases.map { $0.1 })
        for (index, (name, _, code, field)) in Self.cases.enumerated() {
            let result = Result { try records[index].event() }
            switch (result, code) {
            case (.success, nil):
                break
            case (.success, let code?):
                Issue.record("\(name): decoded, expected \(code)")
            case (.failure(let error), nil):
                Issue.record("\(name): expected valid, got \(error)")
            case (.failure(let error), let code?):
                let failure = try #require(error as? WorkflowEventValidationError, "\(name)")
                #expect(failure.code == code, "\(name): \(failure)")
                #expect(failure.field == field, "\(name): \(failure)")
                #expect(field.map { failure.description.contains($0) } ?? true, "\(name)")
            }
        }
    }

    @Test("encoding writes the contract form, and it reads back equal, by both decoders")
    func encodingRoundTrip() async throws {
        var events = SampleEvents.make(count: 50)
        events[0].payload.data["big"] = .int(9_007_199_254_740_993)
        events[0].payload.data["ratio"] = .double(0.1)
        events[0].payload.data["text"] = "quote \" backslash \\ newline \n emoji 🚀 control \u{01}"
        events[0].payload.additionalFields["version"] = 2
        events[1].workflowRunID = nil
        let records = try await Self.roundTrip(try events.map { try $0.jsonBytes() })
        for (record, event) in zip(records, events) {
            let decoded = try record.event()
            #expect(decoded == event)
            let viaCodable = try JSONDecoder().decode(WorkflowEvent.self, from: Data(record.value!))
            #expect(viaCodable == event)
        }
        let text = try events[1].jsonString()
        #expect(text.contains("\"workflow_run_id\":null"))
        #expect(text.contains("\"timestamp\":\"2026-11-18T"))
        let reencoded = try JSONEncoder().encode(events[0])
        #expect(try WorkflowEvent(validatingJSON: reencoded) == events[0])
    }

    @Test("hostile input is an error, never a crash")
    func hostileInput() async throws {
        let deep = Array(repeating: UInt8(ascii: "["), count: 200_000) + Array(repeating: UInt8(ascii: "]"), count: 200_000)
        let deepInPayload = Self.document(["payload": "{\"data\":{\"x\":" + String(repeating: "[", count: 200_000) + "}}"])
        let longString = Self.document(["payload": "{\"data\":{\"blob\":\"" + String(repeating: "a", count: 1_000_000) + "\"}}"])
        let records = try await Self.roundTrip([deep, deepInPayload, longString, [0xFF, 0xFE, 0x00], []])
        #expect(throws: WorkflowEventValidationError.self) { try records[0].event() }
        do {
            _ = try records[1].event()
            Issue.record("200,000-deep nesting decoded")
        } catch let error as WorkflowEventValidationError {
            #expect(error.code == .nestingTooDeep)
            #expect(error.field == "payload.data")
        }
        #expect(try records[2].event().payload.data["blob"]?.stringValue?.count == 1_000_000)
        #expect(throws: WorkflowEventValidationError.self) { try records[3].event() }
        #expect(throws: WorkflowEventValidationError.self) { try records[4].event() }

        // Every prefix and many byte flips of a valid event either decode or throw.
        let valid = try SampleEvents.make(count: 1)[0].jsonBytes()
        for length in 0..<valid.count {
            _ = try? WorkflowEvent(validatingJSON: Array(valid[0..<length]))
        }
        var state: UInt64 = 7
        for _ in 0..<20_000 {
            var mutated = valid
            for _ in 0..<3 {
                state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                mutated[Int(state >> 33) % mutated.count] = UInt8(truncatingIfNeeded: state >> 13)
            }
            _ = try? WorkflowEvent(validatingJSON: mutated)
        }
    }
}
