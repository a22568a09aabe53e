import Foundation
import InMemoryLogging
import Logging
import Synchronization
import Testing
import WorkflowEventsTesting

@testable import WorkflowEvents

/// Every reader, on the in-memory client: what it delivers, what it stores and commits.
@Suite("Readers, on the in-memory client", .timeLimit(.minutes(1)))
struct ReaderTests {
    @Test("a stream delivers every event once, in order per partition; the close commits the end")
    func streamDeliversEverything() async throws {
        let fixture = Fixture(partitions: 3, events: 90)
        let (consumer, _) = try fixture.consumer()
        var seen: [WorkflowEventMessage] = []
        for try await message in consumer.messages(topics: [fixture.topic]) {
            seen.append(message)
            if seen.count == 90 { break }
        }
        await consumer.close()
        let offsets = offsetsByPartition(seen)
        #expect(offsets.count == 3, "partitions delivered: \(offsets.keys.sorted())")
        for (partition, delivered) in offsets {
            #expect(delivered == Array(0..<Int64(delivered.count)), "partition \(partition) delivered \(delivered)")
        }
        // The 90th event was in hand at the `break`: not finished, not committed.
        let last = try #require(seen.last)
        var expected = fixture.endOffsets
        expected[fixture.partition(last.partition)] = last.offset
        #expect(fixture.committed == expected, "committed \(fixture.committed), expected \(expected)")
        fixture.expectNoMessageLeaked()
    }

    @Test("the event in hand at a break is read again by the group's next member, and nothing before it")
    func breakLeavesEventInHand() async throws {
        let fixture = Fixture(partitions: 1, events: 20)
        let (first, _) = try fixture.consumer()
        var count = 0
        for try await _ in first.events(topics: [fixture.topic]) {
            count += 1
            if count == 7 { break }
        }
        await first.close()
        #expect(fixture.committed == [fixture.partition(0): 6])
        let (second, _) = try fixture.consumer()
        var again: [Int64] = []
        for try await message in second.messages(topics: [fixture.topic]) {
            again.append(message.offset)
            if again.count == 14 { break }
        }
        await second.close()
        #expect(again == Array(6..<20))
        fixture.expectNoMessageLeaked()
    }

    @Test("commit() in a loop body commits through the event in hand")
    func commitInBody() async throws {
        let fixture = Fixture(partitions: 1, events: 10)
        let (consumer, _) = try fixture.consumer(autoCommit: false)
        var count = 0
        for try await _ in consumer.events(topics: [fixture.topic]) {
            count += 1
            if count == 4 {
                try await consumer.commit()
                break
            }
        }
        #expect(fixture.committed == [fixture.partition(0): 4])
        await consumer.close()
        // Auto-commit off: the close commits nothing more.
        #expect(fixture.committed == [fixture.partition(0): 4])
        fixture.expectNoMessageLeaked()
    }

    @Test("consumeEvents hands every event to the callback and commits them all")
    func consumeEventsCommitsAll() async throws {
        let fixture = Fixture(partitions: 2, events: 30)
        let (consumer, _) = try fixture.consumer()
        let handled = Mutex(0)
        let count = try await consumer.consumeEvents(topics: [fixture.topic], timeout: .milliseconds(100)) { _ in
            handled.withLock { $0 += 1 }
        }
        await consumer.close()
        #expect(count == 30)
        #expect(handled.withLock { $0 } == 30)
        #expect(fixture.committed == fixture.endOffsets)
        fixture.expectNoMessageLeaked()
    }

    @Test("consumeEvents logs and counts a throwing callback, goes on with the next events, and returns after the idle timeout")
    func throwingCallback() async throws {
        struct Refused: Error {}
        let fixture = Fixture(partitions: 2, events: 40)
        let (logger, logs) = recordingLogger()
        let (consumer, _) = try fixture.kafka.makeConsumer(fixture.configuration(), logger: logger)
        var seen: [UUID] = []
        let started = ContinuousClock.now
        let handled = try await consumer.consumeEvents(topics: [fixture.topic], timeout: .milliseconds(50)) { event in
            seen.append(event.eventID)
            if seen.count % 10 == 0 { throw Refused() }
        }
        // Not before the idle timeout has passed with nothing left to read.
        #expect(ContinuousClock.now - started >= .milliseconds(50))
        #expect(handled == 40)
        #expect(Set(seen) == Set(fixture.placement.keys))
        let statistics = await consumer.statistics
        #expect(statistics.handlerFailures == 4, "\(statistics)")
        #expect(statistics.eventsDelivered == 40, "\(statistics)")
        #expect(logs.entries.filter { $0.message.description.contains("handler failed") }.count == 4)
        await consumer.close()
        #expect(fixture.committed == fixture.endOffsets, "committed \(fixture.committed)")
        fixture.expectNoMessageLeaked()
    }

    @Test("a CancellationError thrown by a callback whose task is not cancelled is a handler error, not the end")
    func cancellationErrorIsHandlerError() async throws {
        let fixture = Fixture(partitions: 1, events: 30)
        let (consumer, _) = try fixture.consumer()
        let seen = Mutex(0)
        let count = try await consumer.consumeEvents(topics: [fixture.topic], timeout: .milliseconds(100)) { _ in
            let number = seen.withLock { count in
                count += 1
                return count
            }
            if number % 7 == 0 { throw CancellationError() }
        }
        let statistics = await consumer.statistics
        #expect(await !consumer.isClosed, "the callback's CancellationError closed the consumer")
        await consumer.close()
        #expect(seen.withLock { $0 } == 30, "the callback saw \(seen.withLock { $0 }) of 30 events")
        #expect(count == 30)
        #expect(statistics.handlerFailures == 4, "\(statistics)")
        // Skipped under the policy (no retries, no dead-letter topic): every offset moves on.
        #expect(fixture.committed == [fixture.partition(0): 30])
    }

    @Test("cancelling the reading task closes the consumer and commits what the body finished")
    func cancellationCloses() async throws {
        let fixture = Fixture(partitions: 1, events: 50)
        let (consumer, client) = try fixture.consumer()
        let finished = Mutex<[Int64]>([])
        let tenth = AsyncStream<Void>.makeStream()
        let reader = Task {
            for try await message in consumer.messages(topics: [fixture.topic]) {
                finished.withLock { $0.append(message.offset) }
                if message.offset == 9 {
                    tenth.continuation.yield()
                    // Waits here, with offset 10 not yet asked for, until cancelled.
                    try await untilCancelled()
                }
            }
        }
        var iterator = tenth.stream.makeAsyncIterator()
        await iterator.next()
        reader.cancel()
        _ = await reader.result
        // The cancellation began the close; this waits for it to end.
        await consumer.close()
        #expect(client.isClosed)
        // Offset 9's body ended because its task was cancelled: not finished, not committed.
        #expect(fixture.committed == [fixture.partition(0): 9], "committed \(fixture.committed)")
        fixture.expectNoMessageLeaked()
    }

    @Test("poll returns records by partition, and finishes them at the next poll")
    func pollFinishesAtNextPoll() async throws {
        let fixture = Fixture(partitions: 2, events: 20)
        let (consumer, client) = try fixture.consumer()
        try await consumer.subscribe([fixture.topic])
        var records: [ConsumerRecord] = []
        while records.count < 20 {
            let polled = try await consumer.poll(timeout: .milliseconds(200))
            for (partition, list) in polled {
                #expect(list.allSatisfy { $0.topicPartition == partition }, "\(partition): \(list.map(\.topicPartition))")
                #expect(list.map(\.offset) == list.map(\.offset).sorted(), "\(partition): \(list.map(\.offset))")
            }
            records += polled.values.flatMap { $0 }
        }
        #expect(Set(records.map { "\($0.partition):\($0.offset)" }).count == 20)
        // The last records polled are not finished until the next poll.
        #expect(client.stored.values.reduce(0, +) < 20)
        _ = try await consumer.poll(timeout: .milliseconds(10))
        #expect(client.stored == fixture.endOffsets)
        await consumer.close()
        #expect(fixture.committed == fixture.endOffsets)
        fixture.expectNoMessageLeaked()
    }

    @Test("batches hold at most maxCount events, and a batch is finished when the next is asked for")
    func batchesFinishWhenNextAsked() async throws {
        let fixture = Fixture(partitions: 2, events: 40)
        let (consumer, client) = try fixture.consumer()
        var total = 0
        for try await batch in consumer.batches(topics: [fixture.topic], maxCount: 7, maxWait: .zero) {
            #expect(!batch.isEmpty && batch.count <= 7, "a batch of \(batch.count)")
            total += batch.count
            // The batch in hand is not stored.
            for message in batch {
                let stored = client.stored[fixture.partition(message.partition)] ?? 0
                #expect(stored <= message.offset, "offset \(message.offset) in hand, \(stored) stored")
            }
            if total == 40 { break }
        }
        await consumer.close()
        #expect(total == 40)
        fixture.expectNoMessageLeaked()
    }
}
