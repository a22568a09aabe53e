import Foundation
import Synchronization
import Testing
import WorkflowEventsTesting

@testable import WorkflowEvents

/// `assign`, `unsubscribe` and their conflicts with `subscribe`, on the in-memory client.
@Suite("Assignment, on the in-memory client", .timeLimit(.minutes(1)))
struct AssignmentTests {
    @Test("assign reads exactly the partitions given, from the offsets given, without a group")
    func assignWithOffsets() async throws {
        let fixture = Fixture(partitions: 3, events: 90, group: nil)
        let (consumer, _) = try fixture.consumer()
        let partition = fixture.partition(1)
        try await consumer.assign([partition: 2])
        #expect(await consumer.assignment == [partition])
        var messages: [WorkflowEventMessage] = []
        for try await message in consumer.messages(topics: [fixture.topic], idleTimeout: .milliseconds(50)) { messages.append(message) }
        await consumer.close()
        #expect(messages.allSatisfy { $0.partition == 1 }, "partitions read: \(Set(messages.map(\.partition)))")
        #expect(messages.map(\.offset) == Array(2..<30))
        fixture.expectNoMessageLeaked()
    }

    @Test("with a group, assign starts at the committed offset, commits under the group, and joins no rebalance")
    func assignWithGroup() async throws {
        let fixture = Fixture(partitions: 2, events: 40)
        let partition = fixture.partition(0)
        let (first, _) = try fixture.consumer(autoCommit: false)
        try await first.assign([partition])
        var read: [Int64] = []
        for try await message in first.messages(topics: [fixture.topic]) {
            read.append(message.offset)
            if read.count == 5 {
                try await first.commit()
                break
            }
        }
        #expect(fixture.committed == [partition: 5], "committed \(fixture.committed)")
        // Another consumer of the group assigning the same partition starts at the commit;
        // the first one keeps its assignment (nobody rebalanced).
        let (second, _) = try fixture.consumer(autoCommit: false)
        try await second.assign([partition])
        var next: Int64?
        for try await message in second.messages(topics: [fixture.topic]) {
            next = message.offset
            break
        }
        #expect(next == 5)
        #expect(await first.assignment == [partition])
        #expect(await first.statistics.rebalances == 0)
        await first.close()
        await second.close()
        fixture.expectNoMessageLeaked()
    }

    @Test("assign after subscribe, subscribe after assign, or a partition that does not exist is refused with what to do")
    func assignConflicts() async throws {
        let fixture = Fixture(partitions: 1, events: 1, group: nil)
        fixture.kafka.createTopic("other", partitions: 1)
        let (consumer, _) = try fixture.consumer()
        try await consumer.subscribe([fixture.topic])
        await #expect(throws: WorkflowEventsError.self) { try await consumer.assign([fixture.partition(0)]) }
        try await consumer.unsubscribe()
        try await consumer.assign([fixture.partition(0)])
        do {
            try await consumer.subscribe(["other"])
            Issue.record("subscribed while assigned")
        } catch let error as WorkflowEventsError {
            #expect(error.code == .invalidConfiguration)
            #expect("\(error)".contains("unsubscribe()"), "the error says: \(error)")
        }
        do {
            try await consumer.assign([fixture.partition(9)])
            Issue.record("assigned a partition that does not exist")
        } catch {
            #expect("\(error)".contains("\(fixture.topic)[9]"), "the error says: \(error)")
        }
        await consumer.close()
    }

    @Test("unsubscribe revokes the group's partitions (the revocation handler commits), and a new subscription reads on from the commit")
    func unsubscribeThenSubscribe() async throws {
        let fixture = Fixture(partitions: 1, events: 20)
        let partition = fixture.partition(0)
        let (consumer, _) = try fixture.consumer(autoCommit: false)
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
        #expect(fixture.committed == [partition: 6], "committed \(fixture.committed)")
        var again: Int64?
        for try await message in consumer.messages(topics: [fixture.topic]) {
            again = message.offset
            break
        }
        #expect(again == 6)
        await consumer.close()
        fixture.expectNoMessageLeaked()
    }
}
