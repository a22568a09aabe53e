import Foundation
import Synchronization
import Testing
import WorkflowEventsTesting

@testable import WorkflowEvents

/// What is stored and committed as readers end, hand over and hold events, on the in-memory
/// client.
@Suite("Offsets, on the in-memory client", .timeLimit(.minutes(1)))
struct OffsetTests {
    /// Reads one event, pauses `paused` (while messages of it are already taken from the
    /// client), and reads on until idle: the messages of `paused` taken meanwhile are held.
    func readThenPause(_ consumer: WorkflowEventConsumer, topic: String, paused: [TopicPartition]) async throws -> [WorkflowEventMessage] {
        var delivered: [WorkflowEventMessage] = []
        for try await message in consumer.messages(topics: [topic], idleTimeout: .milliseconds(50)) {
            if delivered.isEmpty { try await consumer.pause(paused) }
            delivered.append(message)
        }
        return delivered
    }

    @Test("a loop body that throws leaves its event uncommitted and unstored; the next read gives it again")
    func throwingBody() async throws {
        struct HandlingFailed: Error {}
        let fixture = Fixture(partitions: 1, events: 5)
        let (consumer, _) = try fixture.consumer(autoCommit: false)
        await #expect(throws: HandlingFailed.self) {
            for try await message in consumer.messages(topics: [fixture.topic]) where message.offset == 2 {
                throw HandlingFailed()
            }
        }
        try await consumer.commit()
        #expect(fixture.committed == [fixture.partition(0): 2], "committed \(fixture.committed)")
        var again: Int64?
        for try await message in consumer.messages(topics: [fixture.topic]) {
            again = message.offset
            break
        }
        #expect(again == 2)
        await consumer.close()
        fixture.expectNoMessageLeaked()
    }

    @Test("a loop left with break: commit() does not store the event in hand, and the next loop starts with it")
    func breakThenCommit() async throws {
        let fixture = Fixture(partitions: 1, events: 5)
        let (consumer, _) = try fixture.consumer(autoCommit: false)
        for try await message in consumer.messages(topics: [fixture.topic]) where message.offset == 2 { break }
        try await consumer.commit()
        #expect(fixture.committed == [fixture.partition(0): 2], "committed \(fixture.committed)")
        var again: [Int64] = []
        for try await message in consumer.messages(topics: [fixture.topic]) {
            again.append(message.offset)
            if again.count == 3 { break }
        }
        #expect(again == [2, 3, 4])
        await consumer.close()
        fixture.expectNoMessageLeaked()
    }

    @Test("a second reader while one holds an event is refused with a clear error; the first goes on")
    func secondReaderRefused() async throws {
        let fixture = Fixture(partitions: 1, events: 10)
        let (consumer, _) = try fixture.consumer(autoCommit: false)
        var first = consumer.messages(topics: [fixture.topic]).makeAsyncIterator()
        #expect(try await first.next()?.offset == 0)
        #expect(try await first.next()?.offset == 1)
        var second = consumer.messages(topics: [fixture.topic]).makeAsyncIterator()
        let refused = await #expect(throws: WorkflowEventsError.self) { _ = try await second.next() }
        #expect(refused?.code == .readerBusy)
        #expect(refused?.message.contains("another reader") == true, "the error says: \(String(describing: refused))")
        await #expect(throws: WorkflowEventsError.self) {
            try await consumer.consumeEvents(topics: [fixture.topic], timeout: .milliseconds(50)) { _ in }
        }
        await #expect(throws: WorkflowEventsError.self) { _ = try await consumer.poll(timeout: .milliseconds(10)) }
        // The first reader goes on, and a commit covers what it finished and the event in hand.
        #expect(try await first.next()?.offset == 2)
        try await consumer.commit()
        #expect(fixture.committed == [fixture.partition(0): 3], "committed \(fixture.committed)")
        await consumer.close()
        fixture.expectNoMessageLeaked()
    }

    @Test("process takes over what an earlier stream took, the event in hand included, and refuses while partitions are paused (20 rounds)")
    func processAfterStream() async throws {
        for round in 0..<20 {
            let fixture = Fixture(partitions: 2, events: 200)
            let (consumer, client) = try fixture.consumer()
            var seen: Set<UUID> = []
            for try await event in consumer.events(topics: [fixture.topic]) {
                seen.insert(event.eventID)
                if seen.count == 10 { break }
            }
            let paused = fixture.partition(0)
            try await consumer.pause([paused])
            let refused = await #expect(throws: WorkflowEventsError.self) {
                try await consumer.process(topics: [fixture.topic]) { _ in }
            }
            #expect(refused?.message.contains("paused") == true, "the error says: \(String(describing: refused))")
            try await consumer.resume([paused])
            // Every event not finished by the stream: the one in hand at the break included.
            let expected = Set(fixture.placement.keys).subtracting(seen).count + 1
            let handled = Shared<Set<UUID>>([])
            let (done, signal) = AsyncStream<Void>.makeStream()
            let processing = Task {
                try await consumer.process(topics: [fixture.topic], maxConcurrency: 4) { event in
                    if handled.withLock({ $0.insert(event.eventID).inserted && $0.count == expected }) { signal.yield() }
                }
            }
            for await _ in done { break }
            processing.cancel()
            try await processing.value
            let missing = Set(fixture.placement.keys).subtracting(seen.union(handled.withLock { $0 }))
            #expect(
                missing.isEmpty,
                "round \(round): never handled \(missing.map { fixture.placement[$0]! }.map { "\($0.0):\($0.1)" }); stores \(client.stores.map { "\($0.0.partition):\($0.1)" })"
            )
            await consumer.close()
            #expect(fixture.committed == fixture.endOffsets, "round \(round): committed \(fixture.committed)")
            fixture.expectNoMessageLeaked()
        }
    }

    @Test("serve after stopServing serves again, from where the first run stopped")
    func serveAgain() async throws {
        let fixture = Fixture(partitions: 1, events: 10)
        let (consumer, _) = try fixture.consumer()
        let firstRun = try await consumer.serve(topics: [fixture.topic]) { _ in consumer.stopServing() }
        #expect(firstRun == 1)
        let counter = Atomic<Int>(0)
        let secondRun = try await consumer.serve(topics: [fixture.topic]) { _ in
            if counter.add(1, ordering: .relaxed).newValue == 9 { consumer.stopServing() }
        }
        #expect(secondRun == 9)
        await consumer.close()
        #expect(fixture.committed == [fixture.partition(0): 10], "committed \(fixture.committed)")
    }

    @Test("a rebalance event stream made after close finishes at once")
    func rebalanceStreamAfterClose() async throws {
        let fixture = Fixture(partitions: 1, events: 0)
        let (consumer, _) = try fixture.consumer()
        await consumer.close()
        var count = 0
        for await _ in consumer.rebalanceEvents() { count += 1 }
        #expect(count == 0)
    }

    @Test("messages held for a paused partition are dropped by a seek: after resume, the partition starts at the seek")
    func seekDropsHeldMessages() async throws {
        let fixture = Fixture(partitions: 2, events: 40)
        let (consumer, client) = try fixture.consumer()
        let zero = fixture.partition(0)
        let before = try await readThenPause(consumer, topic: fixture.topic, paused: [zero])
        #expect(before.dropFirst().allSatisfy { $0.partition == 1 }, "delivered while paused: \(before.map(\.partition))")
        #expect(client.paused == [zero])
        try await consumer.seek(zero, to: 15)
        try await consumer.resume([zero])
        var resumed: [WorkflowEventMessage] = []
        for try await message in consumer.messages(topics: [fixture.topic], idleTimeout: .milliseconds(50)) { resumed.append(message) }
        #expect(resumed.map(\.offset) == [15, 16, 17, 18, 19], "after the seek: \(resumed.map { "\($0.partition):\($0.offset)" })")
        #expect(resumed.allSatisfy { $0.partition == 0 })
        await consumer.close()
        fixture.expectNoMessageLeaked()
    }

    @Test("messages held for a paused partition are dropped when the partition is revoked")
    func revokeDropsHeldMessages() async throws {
        let fixture = Fixture(partitions: 2, events: 40)
        let (consumer, client) = try fixture.consumer(autoCommit: false)
        let both = fixture.allPartitions
        let before = try await readThenPause(consumer, topic: fixture.topic, paused: both)
        #expect(before.count == 1)
        // The revocation runs in the next fetch: a poll, with both partitions paused.
        client.revoke([fixture.partition(0)])
        #expect(try await consumer.poll(timeout: .milliseconds(10)).isEmpty)
        let owned = await consumer.assignment
        #expect(owned == [fixture.partition(1)])
        try await consumer.resume(both)
        var delivered: [WorkflowEventMessage] = []
        for try await message in consumer.messages(topics: [fixture.topic], idleTimeout: .milliseconds(50)) { delivered.append(message) }
        #expect(!delivered.isEmpty)
        #expect(delivered.allSatisfy { $0.partition == 1 }, "delivered after the revocation: \(delivered.map { "\($0.partition):\($0.offset)" })")
        await consumer.close()
        fixture.expectNoMessageLeaked()
    }
}
