import Foundation
import Synchronization
import TestSupport
import Testing
import WorkflowEvents
import WorkflowEventsTesting

@Suite("Assignment, unsubscribe, seeking to either end and by time")
struct AssignmentTests {
    @Test("assign reads exactly the partitions given, from the offsets given, without a group")
    func assignWithOffsets() async throws {
        let fixture = try await makeFixture(partitions: 3, events: 90)
        defer { fixture.cluster.shutdown() }
        let consumer = try WorkflowEventConsumer(configuration: .init(bootstrapServers: fixture.cluster.bootstrapServers))
        let partition = TopicPartition(topic: fixture.topic, partition: 1)
        let inPartition = fixture.reports.filter { $0.partition == 1 }.count
        try await consumer.assign([partition: 2])
        #expect(await consumer.assignment == [partition])
        let messages = try await collect(consumer.messages(topics: [fixture.topic], idleTimeout: .seconds(2)), count: inPartition - 2)
        await consumer.close()
        #expect(messages.allSatisfy { $0.partition == 1 })
        #expect(messages.map(\.offset) == Array(2..<Int64(inPartition)))
    }

    @Test("with a group, assign starts at the committed offset, commits under the group, and joins no rebalance")
    func assignWithGroup() async throws {
        let fixture = try await makeFixture(partitions: 2, events: 40)
        defer { fixture.cluster.shutdown() }
        let configuration = groupConfiguration(fixture.cluster, group: "manual", autoCommit: false)
        let partition = TopicPartition(topic: fixture.topic, partition: 0)
        let first = try WorkflowEventConsumer(configuration: configuration)
        try await first.assign([partition])
        var read: [Int64] = []
        for try await message in first.messages(topics: [fixture.topic]) {
            read.append(message.offset)
            if read.count == 5 {
                try await first.commit()
                break
            }
        }
        #expect(try await first.committed([partition])[partition] == 5)
        // Another consumer of the group assigning the same partition starts at the commit;
        // the first one keeps its assignment (nobody rebalanced).
        let second = try WorkflowEventConsumer(configuration: configuration)
        try await second.assign([partition])
        let next = try await collect(second.messages(topics: [fixture.topic]), count: 1)
        #expect(next.first?.offset == 5)
        #expect(await first.assignment == [partition])
        #expect(await first.statistics.rebalances == 0)
        await first.close()
        await second.close()
    }

    @Test("assign after subscribe, subscribe after assign, or reading other topics is refused with what to do")
    func assignConflicts() async throws {
        let fixture = try await makeFixture(partitions: 1, events: 1)
        defer { fixture.cluster.shutdown() }
        try fixture.cluster.createTopic("other", partitions: 1)
        let consumer = try WorkflowEventConsumer(configuration: .init(bootstrapServers: fixture.cluster.bootstrapServers))
        try await consumer.subscribe([fixture.topic])
        await #expect(throws: WorkflowEventsError.self) { try await consumer.assign([TopicPartition(topic: fixture.topic, partition: 0)]) }
        try await consumer.unsubscribe()
        try await consumer.assign([TopicPartition(topic: fixture.topic, partition: 0)])
        do {
            try await consumer.subscribe(["other"])
            Issue.record("subscribed while assigned")
        } catch let error as WorkflowEventsError {
            #expect(error.code == .invalidConfiguration)
            #expect("\(error)".contains("unsubscribe()"))
        }
        do {
            try await consumer.assign([TopicPartition(topic: fixture.topic, partition: 9)])
            Issue.record("assigned a partition that does not exist")
        } catch let error as KafkaError {
            #expect("\(error)".contains("\(fixture.topic)[9]"))
        }
        await consumer.close()
    }

    @Test("unsubscribe revokes the group's partitions (the revocation handler commits), and a new subscription reads on from the commit")
    func unsubscribeThenSubscribe() async throws {
        let fixture = try await makeFixture(partitions: 1, events: 20)
        defer { fixture.cluster.shutdown() }
        let configuration = groupConfiguration(fixture.cluster, group: "unsubscribe", autoCommit: false)
        let consumer = try WorkflowEventConsumer(configuration: configuration)
        let partition = TopicPartition(topic: fixture.topic, partition: 0)
        let handled = Mutex<[String]>([])
        consumer.onPartitionsRevoked { revoked in
            do {
                // The stream finished events 0 to 5: stored, committed here.
                try await revoked.commit()
                handled.withLock { $0.append("committed \(revoked.partitions)") }
            } catch {
                handled.withLock { $0.append("refused: \(error)") }
            }
        }
        var read = 0
        for try await _ in consumer.events(topics: [fixture.topic]) {
            read += 1
            if read == 7 { break }  // the seventh is in hand, not finished
        }
        try await consumer.unsubscribe()
        #expect(await consumer.assignment.isEmpty)
        #expect(handled.withLock { $0 } == ["committed [\(partition)]"])
        #expect(try await consumer.committed([partition])[partition] == 6)
        let again = try await collect(consumer.messages(topics: [fixture.topic]), count: 1)
        #expect(again.first?.offset == 6)
        await consumer.close()
    }

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
