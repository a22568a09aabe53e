import Foundation
import TestSupport
import Testing
import WorkflowEvents
import WorkflowEventsTesting

/// The contract codec, fed from records that went through a Kafka broker (librdkafka's
/// messages, decoded where they are fetched).
@Suite("Event model and contract codec")
struct EventModelTests {
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

}
