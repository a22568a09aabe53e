import Foundation
import Synchronization
import TestSupport
import Testing
import WorkflowEvents
import WorkflowEventsTesting

/// Reads batches until they hold `count` events (or `timeout`), keeping the batches.
private func collectBatches(
    _ stream: AsyncThrowingStream<[WorkflowEventMessage], any Error>, events count: Int, timeout: Duration = .seconds(30)
) async throws -> [[WorkflowEventMessage]] {
    try await collect(stream, events: count, counting: \.count, timeout: timeout)
}

@Suite("Reading in batches")
struct BatchReadingTests {
    @Test("tombstones and invalid events are skipped, counted and dead-lettered as in the stream")
    func invalidAndTombstones() async throws {
        let cluster = try MockKafkaCluster()
        defer { cluster.shutdown() }
        try cluster.createTopic("mixed", partitions: 1)
        try cluster.createTopic("dead-letters", partitions: 1)
        let events = SampleEvents.make(count: 4)
        var values: [[UInt8]?] = []
        for event in events {
            values.append(try event.jsonBytes())
            values.append(Array("{not json".utf8))
        }
        values.insert(nil, at: 3)
        try await produceRecords(values, to: "mixed", on: cluster)
        var configuration = groupConfiguration(cluster, group: "batches-mixed")
        configuration.deadLetterTopic = "dead-letters"
        let consumer = try WorkflowEventConsumer(configuration: configuration)
        let batches = try await collectBatches(consumer.batches(topics: ["mixed"], maxCount: 50, maxWait: .milliseconds(200)), events: 4)
        #expect(batches.flatMap { $0 }.map(\.event) == events)
        try await waitUntil("the dead letters written", timeout: .seconds(20)) {
            await consumer.statistics.deadLettered >= 3
        }
        let statistics = await consumer.statistics
        #expect(statistics.invalidEvents >= 3)
        #expect(statistics.tombstones == 1)
        await consumer.close()
    }

}
