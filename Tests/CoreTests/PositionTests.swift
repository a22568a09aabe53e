import Foundation
import Testing
import WorkflowEventsTesting

@testable import WorkflowEvents

/// Seeks, pauses and positions, on the in-memory client.
@Suite("Seeks and pauses, on the in-memory client", .timeLimit(.minutes(1)))
struct PositionTests {
    @Test("a seek back in a loop body delivers the partition again from there; the event in hand is not stored")
    func seekBack() async throws {
        let fixture = Fixture(partitions: 1, events: 20)
        let (consumer, client) = try fixture.consumer()
        var delivered: [Int64] = []
        var sought = false
        for try await message in consumer.messages(topics: [fixture.topic]) {
            delivered.append(message.offset)
            if message.offset == 9 && !sought {
                sought = true
                try await consumer.seek(fixture.partition(0), to: 3)
                #expect((client.stored[fixture.partition(0)] ?? 0) <= 9, "stored \(client.stored) after the seek")
            }
            if delivered.count == 27 { break }
        }
        #expect(delivered == Array(0...9) + Array(3..<20), "delivered \(delivered)")
        await consumer.close()
        fixture.expectNoMessageLeaked()
    }

    @Test("a seek that a revocation overtakes throws partitionNotAssigned, as documented, naming the partition")
    func seekOvertakenByRevocation() async throws {
        let fixture = Fixture(partitions: 2, events: 20)
        let (consumer, client) = try fixture.consumer()
        var count = 0
        for try await _ in consumer.events(topics: [fixture.topic]) {
            count += 1
            if count == 3 { break }
        }
        // The group takes partition 0 while the seek is on its way to the client.
        client.revoke([fixture.partition(0)])
        client.rebalanceAtNextSeek()
        do {
            try await consumer.seek(fixture.partition(0), to: 1)
            Issue.record("the seek of a revoked partition succeeded")
        } catch let error as WorkflowEventsError {
            #expect(error.code == .partitionNotAssigned, "threw \(error)")
            #expect("\(error)".contains("workflow-events[0]"), "the error says: \(error)")
        } catch {
            Issue.record("threw \(error) instead of partitionNotAssigned")
        }
        await consumer.close()
        fixture.expectNoMessageLeaked()
    }

    @Test("position is where the next read starts: the event in hand at a break, then the sought offset")
    func positionAfterSeek() async throws {
        let fixture = Fixture(partitions: 1, events: 20)
        let (consumer, _) = try fixture.consumer()
        var count = 0
        for try await _ in consumer.events(topics: [fixture.topic]) {
            count += 1
            if count == 5 { break }
        }
        // The event in hand at the break (offset 4) goes back: it is the next one delivered.
        #expect(try await consumer.position(fixture.partition(0)) == 4)
        try await consumer.seek(fixture.partition(0), to: 12)
        #expect(try await consumer.position(fixture.partition(0)) == 12)
        var next: Int64?
        for try await message in consumer.messages(topics: [fixture.topic]) {
            next = message.offset
            break
        }
        #expect(next == 12)
        await consumer.close()
        fixture.expectNoMessageLeaked()
    }

    @Test("seekToBeginning and seekToEnd move every given partition")
    func seekToEitherEnd() async throws {
        let fixture = Fixture(partitions: 2, events: 20)
        let (consumer, _) = try fixture.consumer()
        var seen: [WorkflowEventMessage] = []
        for try await message in consumer.messages(topics: [fixture.topic]) {
            seen.append(message)
            if seen.count == 20 { break }
        }
        try await consumer.seekToBeginning([fixture.partition(0)])
        try await consumer.seekToEnd([fixture.partition(1)])
        fixture.kafka.append(events: SampleEvents.make(count: 1, seed: 7), to: fixture.partition(1))
        var again: [WorkflowEventMessage] = []
        for try await message in consumer.messages(topics: [fixture.topic]) {
            again.append(message)
            if again.count == 11 { break }
        }
        let byPartition = offsetsByPartition(again)
        #expect(byPartition[0] == Array(0..<10), "partition 0 from the beginning: \(byPartition[0] ?? [])")
        #expect(byPartition[1] == [10], "partition 1 from its end: \(byPartition[1] ?? [])")
        await consumer.close()
        fixture.expectNoMessageLeaked()
    }

    @Test("a paused partition delivers nothing until resumed, then goes on where it stopped, each event once")
    func pauseAndResume() async throws {
        let fixture = Fixture(partitions: 2, events: 200)
        let (consumer, client) = try fixture.consumer()
        let paused = fixture.partition(0)
        var seen: [WorkflowEventMessage] = []
        var resumed = false
        for try await message in consumer.messages(topics: [fixture.topic]) {
            seen.append(message)
            if seen.count == 10 {
                try await consumer.pause([paused])
                #expect(await consumer.pausedPartitions == [paused])
            }
            if seen.count > 10 && !resumed {
                // After the pause only what was already taken of partition 0 may come (the
                // batch in hand is cut at the pause: none).
                #expect(message.partition == 1, "partition 0 delivered offset \(message.offset) while paused")
            }
            if seen.count == 60 {
                #expect(client.paused.contains(paused))
                try await consumer.resume([paused])
                #expect(await consumer.pausedPartitions.isEmpty)
                resumed = true
            }
            if seen.count == 200 { break }
        }
        for (partition, offsets) in offsetsByPartition(seen) {
            #expect(offsets == Array(0..<Int64(offsets.count)), "partition \(partition) delivered \(offsets)")
        }
        await consumer.close()
        fixture.expectNoMessageLeaked()
    }

    @Test("resuming a partition that is not paused, or pausing one before its assignment, changes nothing")
    func resumeWithoutPause() async throws {
        let fixture = Fixture(partitions: 2, events: 100)
        let (consumer, client) = try fixture.consumer()
        // Paused before the group assigned it: applied at the assignment.
        try await consumer.pause([fixture.partition(1)])
        var seen: [WorkflowEventMessage] = []
        for try await message in consumer.messages(topics: [fixture.topic]) {
            seen.append(message)
            if seen.count == 10 {
                #expect(client.paused == [fixture.partition(1)])
                #expect(seen.allSatisfy { $0.partition == 0 })
                try await consumer.resume(fixture.allPartitions)
            }
            if seen.count % 15 == 0 { try await consumer.resume(fixture.allPartitions) }
            if seen.count == 100 { break }
        }
        for (partition, offsets) in offsetsByPartition(seen) {
            #expect(offsets == Array(0..<Int64(offsets.count)), "partition \(partition) delivered \(offsets)")
        }
        await consumer.close()
        fixture.expectNoMessageLeaked()
    }

    @Test("offsets(for:in:) finds the first event at or after a time")
    func offsetsForTime() async throws {
        let kafka = InMemoryKafka()
        kafka.createTopic("timed", partitions: 1)
        let start = Date(timeIntervalSince1970: 1_700_000_000)
        let events = SampleEvents.make(count: 10)
        kafka.append(
            events.enumerated().map { index, event in
                InMemoryKafka.Record(value: try! event.jsonBytes(), timestamp: start.addingTimeInterval(Double(index) * 60))
            }, to: TopicPartition(topic: "timed", partition: 0))
        let (consumer, _) = try kafka.makeConsumer(.init(bootstrapServers: "in-memory:9092", groupID: "timed"))
        let partition = TopicPartition(topic: "timed", partition: 0)
        let found = try await consumer.offsets(for: start.addingTimeInterval(150), in: [partition])
        #expect(found == [partition: 3])
        await consumer.close()
    }

    @Test(
        "without a group and reading from the latest: an untouched partition's position is its end, and a seek before any read is where reading starts"
    )
    func seekWithoutGroup() async throws {
        let fixture = Fixture(partitions: 2, events: 60, group: nil)
        var configuration = fixture.configuration()
        configuration.autoOffsetReset = .latest
        let (consumer, _) = try fixture.kafka.makeConsumer(configuration)
        try await consumer.subscribe([fixture.topic])
        #expect(try await consumer.position(fixture.partition(1)) == 30)
        try await consumer.seek(fixture.partition(0), to: 2)
        var received: [WorkflowEventMessage] = []
        for try await message in consumer.messages(topics: [fixture.topic], idleTimeout: .milliseconds(50)) { received.append(message) }
        #expect(received.map(\.offset) == Array(2..<30), "read \(received.map { "\($0.partition):\($0.offset)" })")
        #expect(received.allSatisfy { $0.partition == 0 })
        await consumer.close()
        fixture.expectNoMessageLeaked()
    }
}
