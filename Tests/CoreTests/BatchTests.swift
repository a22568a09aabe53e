import Foundation
import Synchronization
import Testing
import WorkflowEventsTesting

@testable import WorkflowEvents

/// `batches(topics:maxCount:maxWait:)` on the in-memory client: the batch is the unit of work.
@Suite("Batches, on the in-memory client", .timeLimit(.minutes(1)))
struct BatchTests {
    @Test("every event once, in order per partition, in batches of at most maxCount; full batches when the events are there")
    func everyEventOnce() async throws {
        let fixture = Fixture(partitions: 3, events: 300)
        let (consumer, _) = try fixture.consumer()
        var batches: [[WorkflowEventMessage]] = []
        // maxWait is long: every event is already there, so a batch never waits for it.
        for try await batch in consumer.batches(topics: [fixture.topic], maxCount: 100, maxWait: .seconds(30)) {
            batches.append(batch)
            if batches.reduce(0, { $0 + $1.count }) == 300 { break }
        }
        await consumer.close()
        let all = batches.flatMap { $0 }
        #expect(all.count == 300)
        #expect(Set(all.map(\.event.eventID)).count == 300)
        #expect(batches.allSatisfy { $0.count <= 100 && !$0.isEmpty }, "batch sizes \(batches.map(\.count))")
        #expect(batches.first?.count == 100, "batch sizes \(batches.map(\.count))")
        for (partition, offsets) in offsetsByPartition(all) {
            #expect(offsets == offsets.sorted() && Set(offsets).count == offsets.count, "partition \(partition): \(offsets)")
        }
        fixture.expectNoMessageLeaked()
    }

    @Test("a break leaves the batch in hand unstored, commit() covers the finished batches, and the next read starts with the batch left")
    func breakLeavesBatchInHand() async throws {
        let fixture = Fixture(partitions: 1, events: 30)
        let (consumer, _) = try fixture.consumer(autoCommit: false)
        var seen: [[WorkflowEventMessage]] = []
        for try await batch in consumer.batches(topics: [fixture.topic], maxCount: 10, maxWait: .seconds(30)) {
            seen.append(batch)
            if seen.count == 2 { break }  // the second batch is not processed
        }
        try await consumer.commit()
        #expect(seen.map(\.count) == [10, 10])
        #expect(fixture.committed == [fixture.partition(0): 10], "committed \(fixture.committed)")
        var again: [WorkflowEventMessage] = []
        for try await batch in consumer.batches(topics: [fixture.topic], maxCount: 10, maxWait: .seconds(30)) {
            again = batch
            break
        }
        #expect(again.first?.offset == 10, "the next read started at \(again.first?.offset ?? -1)")
        await consumer.close()
        fixture.expectNoMessageLeaked()
    }

    @Test("a commit() from the body includes the batch in hand")
    func commitFromBody() async throws {
        let fixture = Fixture(partitions: 1, events: 20)
        let (consumer, _) = try fixture.consumer(autoCommit: false)
        var last: Int64 = -1
        for try await batch in consumer.batches(topics: [fixture.topic], maxCount: 8, maxWait: .seconds(30)) {
            last = batch.last!.offset
            try await consumer.commit()
            break
        }
        #expect(last == 7)
        #expect(fixture.committed == [fixture.partition(0): last + 1], "committed \(fixture.committed)")
        await consumer.close()
        fixture.expectNoMessageLeaked()
    }

    @Test("cancelled in the middle of a batch: none of its events is committed, and the next member reads the whole batch")
    func cancelledInsideBatch() async throws {
        let fixture = Fixture(partitions: 1, events: 12)
        let (consumer, client) = try fixture.consumer()
        let (reached, signal) = AsyncStream.makeStream(of: Int64.self)
        let task = Task {
            var batches = 0
            for try await batch in consumer.batches(topics: [fixture.topic], maxCount: 6, maxWait: .seconds(30)) {
                batches += 1
                for message in batch where batches == 2 && message.offset == batch[2].offset {
                    signal.yield(batch[0].offset)
                    try await untilCancelled()
                }
            }
        }
        var iterator = reached.makeAsyncIterator()
        let firstOfSecond = try #require(await iterator.next())
        task.cancel()
        _ = await task.result
        // The cancellation began the close; this waits for it to end.
        await consumer.close()
        #expect(client.isClosed)
        #expect(firstOfSecond == 6)
        #expect(fixture.committed == [fixture.partition(0): 6], "committed \(fixture.committed)")
        let (next, _) = try fixture.consumer()
        var first: Int64?
        for try await message in next.messages(topics: [fixture.topic]) {
            first = message.offset
            break
        }
        #expect(first == 6, "the next member started at \(first ?? -1)")
        await next.close()
        fixture.expectNoMessageLeaked()
    }

    @Test("maxCount below 1 is refused with a clear error")
    func invalidMaxCount() async throws {
        let fixture = Fixture(partitions: 1, events: 1)
        let (consumer, _) = try fixture.consumer()
        do {
            for try await _ in consumer.batches(topics: [fixture.topic], maxCount: 0) {}
            Issue.record("a batch stream with maxCount 0 delivered")
        } catch let error as WorkflowEventsError {
            #expect(error.code == .invalidConfiguration)
            #expect("\(error)".contains("maxCount is 0"), "the error says: \(error)")
        }
        await consumer.close()
    }

    @Test("a batch that cannot fill is handed out maxWait after its first event, not before and not much later")
    func partialBatchAfterMaxWait() async throws {
        let fixture = Fixture(partitions: 1, events: 10)
        let clock = VirtualClock()
        let (consumer, _) = try fixture.consumer(clock: clock)
        let started = clock.now
        var batch: [WorkflowEventMessage] = []
        var handedOut = started
        for try await first in consumer.batches(topics: [fixture.topic], maxCount: 1000, maxWait: .milliseconds(300)) {
            batch = first
            handedOut = clock.now
            break
        }
        await consumer.close()
        #expect(batch.map(\.offset) == Array(0..<10))
        // Every event is there at once: the batch waits maxWait for more, then comes.
        let waited = handedOut - started
        #expect(waited >= .milliseconds(300) && waited < .milliseconds(400), "handed out after \(waited)")
        fixture.expectNoMessageLeaked()
    }
}
