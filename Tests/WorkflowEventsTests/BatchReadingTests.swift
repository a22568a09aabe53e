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
    @Test("every event once, in order per partition, in batches of at most maxCount; full batches when the events are there")
    func everyEventOnce() async throws {
        let fixture = try await makeFixture(partitions: 3, events: 250)
        defer { fixture.cluster.shutdown() }
        let consumer = try WorkflowEventConsumer(configuration: groupConfiguration(fixture.cluster, group: "batches"))
        // maxWait is long: every event is already there, so a batch never waits for it.
        let batches = try await collectBatches(
            consumer.batches(topics: [fixture.topic], maxCount: 100, maxWait: .seconds(3)), events: 250)
        await consumer.close()
        let all = batches.flatMap { $0 }
        #expect(all.count == 250)
        #expect(Set(all.map(\.event.eventID)) == Set(fixture.events.map(\.eventID)))
        #expect(batches.allSatisfy { $0.count <= 100 && !$0.isEmpty })
        #expect(batches.first?.count == 100, "batch sizes \(batches.map(\.count))")
        for partition in Set(all.map(\.partition)) {
            let offsets = all.filter { $0.partition == partition }.map(\.offset)
            #expect(offsets == offsets.sorted())
            #expect(Set(offsets).count == offsets.count)
        }
        #expect(all.allSatisfy { $0.topic == fixture.topic && $0.key != nil })
    }

    @Test("a batch that cannot fill waits at most maxWait once its first event is there")
    func partialBatchAfterMaxWait() async throws {
        let fixture = try await makeFixture(partitions: 1, events: 10)
        defer { fixture.cluster.shutdown() }
        let consumer = try WorkflowEventConsumer(configuration: groupConfiguration(fixture.cluster, group: "batches-wait"))
        let started = ContinuousClock.now
        let batches = try await collectBatches(
            consumer.batches(topics: [fixture.topic], maxCount: 1000, maxWait: .milliseconds(300)), events: 10)
        let elapsed = ContinuousClock.now - started
        await consumer.close()
        #expect(batches.flatMap { $0 }.map(\.event) == fixture.events)
        // Joining the group takes seconds; the bound is loose, the point is that a partial
        // batch comes at all rather than waiting for 1,000 events.
        #expect(elapsed < .seconds(25))
    }

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

    @Test("the batch is the unit of work: a break leaves the batch in hand unstored, commit() covers the finished batches")
    func breakLeavesBatchInHand() async throws {
        let fixture = try await makeFixture(partitions: 1, events: 30)
        defer { fixture.cluster.shutdown() }
        let configuration = groupConfiguration(fixture.cluster, group: "batches-break", autoCommit: false)
        let partition = TopicPartition(topic: fixture.topic, partition: 0)
        let consumer = try WorkflowEventConsumer(configuration: configuration)
        var seen: [[WorkflowEventMessage]] = []
        for try await batch in consumer.batches(topics: [fixture.topic], maxCount: 10, maxWait: .seconds(10)) {
            seen.append(batch)
            if seen.count == 2 { break }  // the second batch is not processed
        }
        try await consumer.commit()
        let committed = try await consumer.committed([partition])[partition]
        #expect(seen.map(\.count) == [10, 10])
        #expect(committed == seen[0].last!.offset + 1)
        // The next read starts with the batch that was left.
        let again = try await collectBatches(consumer.batches(topics: [fixture.topic], maxCount: 10, maxWait: .seconds(10)), events: 1)
        #expect(again.first?.first?.offset == seen[1].first!.offset)
        await consumer.close()
    }

    @Test("a commit() from the body includes the batch in hand")
    func commitFromBody() async throws {
        let fixture = try await makeFixture(partitions: 1, events: 20)
        defer { fixture.cluster.shutdown() }
        let configuration = groupConfiguration(fixture.cluster, group: "batches-commit", autoCommit: false)
        let partition = TopicPartition(topic: fixture.topic, partition: 0)
        let consumer = try WorkflowEventConsumer(configuration: configuration)
        var last: Int64 = -1
        for try await batch in consumer.batches(topics: [fixture.topic], maxCount: 8, maxWait: .seconds(10)) {
            last = batch.last!.offset
            try await consumer.commit()
            break
        }
        #expect(try await consumer.committed([partition])[partition] == last + 1)
        await consumer.close()
    }

    @Test("cancelled in the middle of a batch: none of its events is committed, and the next member reads the whole batch")
    func cancelledInsideBatch() async throws {
        let fixture = try await makeFixture(partitions: 1, events: 12)
        defer { fixture.cluster.shutdown() }
        let configuration = groupConfiguration(fixture.cluster, group: "batches-cancel")
        let consumer = try WorkflowEventConsumer(configuration: configuration)
        let (reached, signal) = AsyncStream.makeStream(of: Int64.self)
        let task = Task {
            var batches = 0
            for try await batch in consumer.batches(topics: [fixture.topic], maxCount: 6, maxWait: .seconds(10)) {
                batches += 1
                for message in batch {
                    if batches == 2 && message.offset == batch[2].offset {
                        signal.yield(batch[0].offset)
                        try await Task.sleep(for: .seconds(60))  // cancelled here
                    }
                }
            }
        }
        var iterator = reached.makeAsyncIterator()
        let firstOfSecond = try #require(await iterator.next())
        task.cancel()
        _ = await task.result
        try await waitUntil("the consumer closed", timeout: .seconds(10)) { await consumer.isClosed }
        let partition = TopicPartition(topic: fixture.topic, partition: 0)
        let (committed, first) = try await withWorkflowEventConsumer(configuration: configuration) { next in
            try await next.subscribe([fixture.topic])
            let committed = try await next.committed([partition])[partition]
            let first = try await collect(next.messages(topics: [fixture.topic]), count: 1).first?.offset
            return (committed, first)
        }
        #expect(firstOfSecond == 6)
        #expect(committed == nil || committed == firstOfSecond)
        #expect(first == firstOfSecond)
    }

    @Test("maxCount below 1 is refused with a clear error")
    func invalidArguments() async throws {
        let consumer = try WorkflowEventConsumer(configuration: .init(bootstrapServers: "localhost:1"))
        do {
            for try await _ in consumer.batches(topics: ["t"], maxCount: 0) {}
            Issue.record("a batch stream with maxCount 0 delivered")
        } catch let error as WorkflowEventsError {
            #expect(error.code == .invalidConfiguration)
            #expect("\(error)".contains("maxCount is 0"))
        }
        await consumer.close()
    }
}
