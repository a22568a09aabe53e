import Foundation
import InMemoryLogging
import Logging
import Synchronization
import Testing
import WorkflowEventsTesting

@testable import WorkflowEvents

/// The guide's flows on the in-memory client: what each call delivers, refuses and commits.
@Suite("The guide's flows, on the in-memory client", .timeLimit(.minutes(1)))
struct FlowTests {
    @Test("a message carries its key, headers and timestamp")
    func keyHeadersTimestamp() async throws {
        let kafka = InMemoryKafka()
        kafka.createTopic("t", partitions: 1)
        let event = SampleEvents.make(count: 1)[0]
        let time = Date(timeIntervalSince1970: 1_750_000_000.25)
        kafka.append(
            [
                .init(
                    key: Array("k1".utf8), value: try event.jsonBytes(), headers: [KafkaHeader(name: "trace", value: Array("abc".utf8))],
                    timestamp: time)
            ],
            to: TopicPartition(topic: "t", partition: 0))
        let (consumer, _) = try kafka.makeConsumer(.init(bootstrapServers: "in-memory:9092", groupID: "g"))
        var received: WorkflowEventMessage?
        for try await message in consumer.messages(topics: ["t"]) {
            received = message
            break
        }
        await consumer.close()
        let message = try #require(received)
        #expect(message.event == event)
        #expect(message.key == Array("k1".utf8))
        #expect(message.headers == [KafkaHeader(name: "trace", value: Array("abc".utf8))])
        #expect(message.timestamp == time)
    }

    @Test("poll returns at most maxPollRecords records at a time")
    func maxPollRecords() async throws {
        let fixture = Fixture(partitions: 2, events: 50)
        var configuration = fixture.configuration()
        configuration.maxPollRecords = 7
        let (consumer, _) = try fixture.kafka.makeConsumer(configuration)
        try await consumer.subscribe([fixture.topic])
        var total = 0
        while total < 50 {
            let polled = try await consumer.poll(timeout: .milliseconds(100)).values.reduce(0) { $0 + $1.count }
            #expect(polled <= 7, "a poll returned \(polled) records")
            total += polled
        }
        #expect(total == 50)
        await consumer.close()
        fixture.expectNoMessageLeaked()
    }

    @Test("commit(_:) of chosen offsets is where the group's next member starts")
    func manualCommitIsWhereNextMemberStarts() async throws {
        let fixture = Fixture(partitions: 2, events: 40)
        let (first, _) = try fixture.consumer(autoCommit: false)
        try await first.subscribe([fixture.topic])
        try await first.commit([fixture.partition(0): 12, fixture.partition(1): 3])
        await first.close()
        let (second, _) = try fixture.consumer()
        var firsts: [Int32: Int64] = [:]
        for try await message in second.messages(topics: [fixture.topic]) {
            if firsts[message.partition] == nil { firsts[message.partition] = message.offset }
            if firsts.count == 2 { break }
        }
        await second.close()
        #expect(firsts == [0: 12, 1: 3])
    }

    @Test("concurrent subscribes to the same topics assign once: positions are not reset")
    func concurrentSubscribes() async throws {
        let fixture = Fixture(partitions: 1, events: 30)
        let (logger, logs) = recordingLogger()
        let (consumer, _) = try fixture.kafka.makeConsumer(fixture.configuration(), logger: logger)
        try await withThrowingDiscardingTaskGroup { group in
            for _ in 0..<5 { group.addTask { try await consumer.subscribe([fixture.topic]) } }
        }
        #expect(logs.entries.filter { $0.message.description == "subscribed" }.count == 1)
        var seen: [Int64] = []
        for try await message in consumer.messages(topics: [fixture.topic]) {
            seen.append(message.offset)
            if seen.count == 10 {
                try await withThrowingDiscardingTaskGroup { group in
                    for _ in 0..<4 { group.addTask { try await consumer.subscribe([fixture.topic]) } }
                }
            }
            if seen.count == 30 { break }
        }
        #expect(seen == Array(0..<30))
        await consumer.close()
        fixture.expectNoMessageLeaked()
    }

    @Test("cancelled inside the loop body: the event in hand is not committed, even when the body goes on to return")
    func cancelledBodyThatReturns() async throws {
        let fixture = Fixture(partitions: 1, events: 20)
        let (consumer, client) = try fixture.consumer()
        let (inBody, continuation) = AsyncStream<Void>.makeStream()
        let (release, releaseContinuation) = AsyncStream<Void>.makeStream()
        let reader = Task {
            for try await message in consumer.messages(topics: [fixture.topic]) where message.offset == 5 {
                continuation.yield()
                // Ignores the cancellation and returns normally.
                for await _ in release { break }
            }
        }
        for await _ in inBody { break }
        reader.cancel()
        releaseContinuation.yield()
        _ = await reader.result
        await consumer.close()
        #expect(client.isClosed)
        #expect(fixture.committed == [fixture.partition(0): 5], "committed \(fixture.committed)")
        fixture.expectNoMessageLeaked()
    }

    @Test("cancelling a tight loop closes the consumer and commits nothing unfinished, wherever the cancellation lands (50 times)")
    func cancelTightLoop() async throws {
        for round in 0..<50 {
            let fixture = Fixture(partitions: 2, events: 40)
            let (consumer, client) = try fixture.consumer()
            let last = Mutex<[Int32: Int64]>([:])
            let reader = Task {
                for try await message in consumer.messages(topics: [fixture.topic]) {
                    last.withLock { $0[message.partition] = message.offset }
                    if round % 2 == 0 { await Task.yield() }
                }
            }
            for _ in 0..<(round % 7) { await Task.yield() }
            reader.cancel()
            _ = await reader.result
            await consumer.close()
            #expect(client.isClosed)
            // Nothing past the last event delivered of each partition is committed.
            for (partition, committed) in fixture.committed {
                let delivered = last.withLock { $0[partition.partition] } ?? -1
                #expect(committed <= delivered + 1, "round \(round): committed \(committed) of \(partition), last delivered \(delivered)")
            }
            fixture.expectNoMessageLeaked()
        }
    }

    @Test("without a group every partition is read, and commit says a group is needed")
    func withoutGroup() async throws {
        let fixture = Fixture(partitions: 3, events: 30, group: nil)
        let (consumer, _) = try fixture.consumer()
        var count = 0
        for try await _ in consumer.events(topics: [fixture.topic], idleTimeout: .milliseconds(50)) { count += 1 }
        #expect(count == 30)
        do {
            try await consumer.commit()
            Issue.record("commit without a group did not throw")
        } catch {
            #expect("\(error)".contains("group"), "the error says: \(error)")
        }
        await consumer.close()
    }

    @Test("invalid events and tombstones are skipped, counted, and their offsets move on")
    func invalidAndTombstones() async throws {
        let kafka = InMemoryKafka()
        kafka.createTopic("t", partitions: 1)
        let partition = TopicPartition(topic: "t", partition: 0)
        let events = SampleEvents.make(count: 4)
        kafka.append(
            [
                .init(value: try events[0].jsonBytes()), .init(value: Array("{not json".utf8)), .init(value: nil),
                .init(value: try events[1].jsonBytes()), .init(value: Array(#"{"event_type": 3}"#.utf8)),
                .init(value: try events[2].jsonBytes()),
            ], to: partition)
        let (logger, logs) = recordingLogger()
        let (consumer, _) = try kafka.makeConsumer(.init(bootstrapServers: "in-memory:9092", groupID: "g"), logger: logger)
        var delivered: [WorkflowEventMessage] = []
        for try await message in consumer.messages(topics: ["t"], idleTimeout: .milliseconds(50)) { delivered.append(message) }
        #expect(delivered.map(\.offset) == [0, 3, 5])
        #expect(delivered.map(\.event) == Array(events.prefix(3)))
        let statistics = await consumer.statistics
        #expect(statistics.invalidEvents == 2)
        #expect(statistics.tombstones == 1)
        // Each invalid event is logged with where it was and why.
        let skipped = logs.entries.filter { $0.message.description == "skipped an invalid event" }
        #expect(skipped.map { $0.metadata["kafka.offset"]?.description } == ["1", "4"], "\(skipped)")
        #expect(skipped.first?.metadata["kafka.topic"] == "t")
        #expect(skipped.first?.metadata["reason"]?.description.contains("expected") == true, "\(skipped)")
        await consumer.close()
        #expect(kafka.committed(group: "g") == [partition: 6])
    }

    @Test("a slow loop body does not make the consumer take more than a batch beyond the one in hand and one read ahead")
    func backPressure() async throws {
        let fixture = Fixture(partitions: 2, events: 400)
        let (consumer, _) = try fixture.consumer()
        var count = 0
        for try await _ in consumer.events(topics: [fixture.topic]) {
            count += 1
            let taken = fixture.kafka.state.withLock { $0.handedOut.count }
            // fetchBatchSize is 16: the batch in hand, one in the buffer, one read ahead.
            #expect(taken <= count + 3 * 16, "\(taken) messages taken from the client with \(count) delivered")
            if count == 100 { break }
        }
        await consumer.close()
        fixture.expectNoMessageLeaked()
    }

    @Test("serve retries a throwing handler under the policy, counts the failure, and serves on")
    func serveRetries() async throws {
        struct Failure: Error {}
        let fixture = Fixture(partitions: 1, events: 10)
        let (consumer, _) = try fixture.consumer(retryPolicy: .init(attempts: 3, initialBackoff: .milliseconds(1)))
        let calls = Mutex<[Int: Int]>([:])
        let served = try await consumer.serve(topics: [fixture.topic]) { event in
            let index = SampleEvents.make(count: 10).firstIndex(of: event)!
            let attempt = calls.withLock { calls in
                calls[index, default: 0] += 1
                return calls[index]!
            }
            if index == 4 { throw Failure() }  // every attempt
            if index == 6 && attempt == 1 { throw Failure() }  // the first only
            if index == 9 { consumer.stopServing() }
        }
        #expect(served == 10)
        #expect(calls.withLock { $0[4] } == 3, "event 4 was called \(calls.withLock { $0[4] ?? 0 }) times")
        #expect(calls.withLock { $0[6] } == 2)
        let statistics = await consumer.statistics
        #expect(statistics.handlerFailures == 1)
        #expect(statistics.handlerRetries == 3)
        await consumer.close()
        #expect(fixture.committed == [fixture.partition(0): 10])
    }

    @Test("serve: a CancellationError from a handler whose task is not cancelled is retried under the policy, and serving goes on")
    func serveCancellationError() async throws {
        let fixture = Fixture(partitions: 1, events: 30)
        let (consumer, _) = try fixture.consumer(retryPolicy: .init(attempts: 2, initialBackoff: .milliseconds(1)))
        let calls = Mutex(0)
        let seen = Mutex(Set<UUID>())
        let served = try await consumer.serve(topics: [fixture.topic]) { event in
            let distinct = seen.withLock { seen in
                seen.insert(event.eventID)
                return seen.count
            }
            if distinct == 30 { consumer.stopServing() }
            let call = calls.withLock { calls in
                calls += 1
                return calls
            }
            if call % 7 == 0 { throw CancellationError() }
        }
        let statistics = await consumer.statistics
        #expect(await !consumer.isClosed, "the handler's CancellationError closed the consumer")
        await consumer.close()
        #expect(served == 30, "served \(served) of 30; the handler was called \(calls.withLock { $0 }) times")
        // Each CancellationError was retried once (a second throw only when the retry is itself a 7th call).
        #expect(statistics.handlerRetries >= 4, "\(statistics)")
        #expect(fixture.committed == [fixture.partition(0): 30], "committed \(fixture.committed)")
    }
}
