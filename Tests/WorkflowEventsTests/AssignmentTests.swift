import Foundation
import Synchronization
import TestSupport
import Testing
import WorkflowEvents
import WorkflowEventsTesting

@Suite("Assignment, unsubscribe, seeking to either end and by time")
struct AssignmentTests {
    @Test("seekToBeginning and seekToEnd: the next read is the first message, or the first one written afterwards")
    func seekToEitherEnd() async throws {
        let fixture = try await makeFixture(partitions: 1, events: 10)
        defer { fixture.cluster.shutdown() }
        let consumer = try WorkflowEventConsumer(configuration: .init(bootstrapServers: fixture.cluster.bootstrapServers))
        let partition = TopicPartition(topic: fixture.topic, partition: 0)
        _ = try await collect(consumer.messages(topics: [fixture.topic]), count: 6)
        try await consumer.seekToBeginning([partition])
        #expect(try await consumer.position(partition) == 0)
        let fromStart = try await collect(consumer.messages(topics: [fixture.topic]), count: 2)
        #expect(fromStart.map(\.offset) == [0, 1])
        try await consumer.seekToEnd([partition])
        let later = SampleEvents.make(count: 1, seed: 77)
        _ = try await produce(later, to: fixture.topic, on: fixture.cluster)
        let fromEnd = try await collect(consumer.messages(topics: [fixture.topic]), count: 1)
        #expect(fromEnd.map(\.event) == later)
        #expect(fromEnd.first?.offset == 10)
        await consumer.close()
    }

    @Test("by time: a time after every message gives the end offset, so a seek to it reads only what is written afterwards")
    func seekByTime() async throws {
        let fixture = try await makeFixture(partitions: 2, events: 20)
        defer { fixture.cluster.shutdown() }
        let consumer = try WorkflowEventConsumer(configuration: .init(bootstrapServers: fixture.cluster.bootstrapServers))
        let partitions = [0, 1].map { TopicPartition(topic: fixture.topic, partition: $0) }
        let future = Date().addingTimeInterval(3600)
        let offsets = try await consumer.offsets(for: future, in: partitions)
        for partition in partitions {
            #expect(offsets[partition] == Int64(fixture.reports.filter { $0.partition == partition.partition }.count))
        }
        try await consumer.subscribe([fixture.topic])
        try await consumer.seek(partitions, to: future)
        let later = SampleEvents.make(count: 2, seed: 78)
        _ = try await produce(later, to: fixture.topic, on: fixture.cluster)
        let read = try await collect(consumer.messages(topics: [fixture.topic]), count: 2)
        #expect(Set(read.map(\.event.eventID)) == Set(later.map(\.eventID)))
        do {
            _ = try await consumer.offsets(for: Date(timeIntervalSince1970: -10), in: partitions)
            Issue.record("a time before 1970 was looked up")
        } catch let error as WorkflowEventsError {
            #expect(error.code == .invalidConfiguration)
        }
        await consumer.close()
    }
}
