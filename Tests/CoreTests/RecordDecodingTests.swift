import Foundation
import Testing
import WorkflowEventsTesting

@testable import WorkflowEvents

/// The event model and its decoder, fed from records read by a consumer of the in-memory
/// client (the cluster tests read them through librdkafka).
@Suite("Records decoded as events, on the in-memory client", .timeLimit(.minutes(1)))
struct RecordDecodingTests {
    static let contractExample = """
        {"event_id":"6f1c2b9e-8d4a-4f7b-9c1e-0a2b3c4d5e6f","event_type":"workflow.completed",
         "source":"github_actions","workflow_id":"build-and-test","workflow_run_id":"run-8812",
         "timestamp":"2026-11-28T16:17:59.123456Z",
         "payload":{"data":{"status":"success","duration_ms":48211,"attempt":1,"tags":["ci","main"]}},
         "metadata":{"correlation_id":"c-42"}}
        """

    /// Writes raw values to a new topic and reads them back as records, without a group.
    static func roundTrip(_ values: [[UInt8]?]) async throws -> [ConsumerRecord] {
        let kafka = InMemoryKafka()
        kafka.createTopic("raw", partitions: 1)
        let partition = TopicPartition(topic: "raw", partition: 0)
        kafka.append(values.map { InMemoryKafka.Record(value: $0) }, to: partition)
        let (consumer, _) = try kafka.makeConsumer(.init(bootstrapServers: "in-memory:9092", maxPollRecords: 10_000))
        try await consumer.subscribe(["raw"])
        var records: [ConsumerRecord] = []
        while records.count < values.count {
            records += try await consumer.poll(timeout: .milliseconds(100)).values.flatMap { $0 }
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

    @Test("each rule of the contract and each extreme input is refused with its code, naming the field")
    func rules() async throws {
        let cases = HostileInputs.contractRules + HostileInputs.extremes
        let records = try await Self.roundTrip(cases.map(\.value))
        for (index, testCase) in cases.enumerated() {
            let (name, code, field) = (testCase.name, testCase.expectedCode, testCase.expectedField)
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

    @Test("hostile input is an error, never a crash")
    func hostileInput() async throws {
        let deep = Array(repeating: UInt8(ascii: "["), count: 200_000) + Array(repeating: UInt8(ascii: "]"), count: 200_000)
        let deepInPayload = HostileInputs.document(["payload": "{\"data\":{\"x\":" + String(repeating: "[", count: 200_000) + "}}"])
        let longString = HostileInputs.document(["payload": "{\"data\":{\"blob\":\"" + String(repeating: "a", count: 1_000_000) + "\"}}"])
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
