import Foundation
import TestSupport
import Testing
import WorkflowEvents
import WorkflowEventsTesting

/// Run under AddressSanitizer by `.ci/run` (`swift test --sanitize=address --filter UseAfterClose`):
/// a librdkafka call on a destroyed handle is reported there, and may crash here.
@Suite("UseAfterClose")
struct UseAfterCloseTests {
    @Test("close() racing lag(topics:) on 64 partitions: lag returns or throws clientClosed, nothing runs on a freed handle (50 rounds)")
    func closeRacingLag() async throws {
        let fixture = try await makeFixture(partitions: 64, events: 0)
        defer { fixture.cluster.shutdown() }
        let configuration = groupConfiguration(fixture.cluster, group: "racing-close")
        var completed = 0
        var refused = 0
        for round in 0..<50 {
            let consumer = try WorkflowEventConsumer(configuration: configuration)
            let lag = Task { try await consumer.lag(topics: [fixture.topic]) }
            // Let the lag get under way, somewhere among its 65 requests.
            try await Task.sleep(for: .microseconds(Int64((round * 397) % 20_000)))
            await consumer.close()
            do {
                let partitions = try await lag.value
                #expect(partitions.count == 64)
                completed += 1
            } catch let error as WorkflowEventsError {
                #expect(error.code == .clientClosed, "round \(round): \(error)")
                refused += 1
            }
            #expect(await consumer.isClosed)
        }
        #expect(completed + refused == 50)
    }

    @Test("close() racing position, topics, group-less subscribe and process: each returns or throws clientClosed (20 rounds)")
    func closeRacingOtherRequests() async throws {
        let fixture = try await makeFixture(partitions: 16, events: 200)
        defer { fixture.cluster.shutdown() }
        for round in 0..<20 {
            let consumer = try WorkflowEventConsumer(configuration: .init(bootstrapServers: fixture.cluster.bootstrapServers))
            let partition = TopicPartition(topic: fixture.topic, partition: Int32(round % 16))
            let calls: [Task<Void, any Error>] = [
                Task { try await consumer.subscribe([fixture.topic]) },
                Task { _ = try await consumer.topics() },
                Task { _ = try await consumer.position(partition) },
                Task { try await consumer.process(topics: [fixture.topic]) { _ in } },
            ]
            try await Task.sleep(for: .microseconds(Int64((round * 1_303) % 30_000)))
            await consumer.close()
            for call in calls {
                do {
                    try await call.value
                } catch let error as WorkflowEventsError {
                    #expect(
                        [WorkflowEventsError.Code.clientClosed, .partitionNotAssigned, .readerBusy].contains(error.code),
                        "round \(round): \(error)")
                }
            }
        }
    }
}
