import Foundation
import InMemoryLogging
import Logging
import Synchronization
import Testing
import WorkflowEventsTesting

@testable import WorkflowEvents

/// Closing, idleness and errors, on the in-memory client.
@Suite("Close, idleness and errors, on the in-memory client", .timeLimit(.minutes(1)))
struct LifecycleTests {
    @Test("close while a stream waits for events ends the stream and commits what it finished")
    func closeWhileWaiting() async throws {
        let fixture = Fixture(partitions: 1, events: 5)
        let (consumer, client) = try fixture.consumer()
        let (fifth, continuation) = AsyncStream<Void>.makeStream()
        let reader = Task {
            var count = 0
            for try await _ in consumer.events(topics: [fixture.topic]) {
                count += 1
                if count == 5 { continuation.yield() }
            }
            return count
        }
        for await _ in fifth { break }
        // The reader asks for a sixth event, which does not come; the close ends its wait.
        await consumer.close()
        let count = try await reader.value
        #expect(count == 5)
        #expect(client.isClosed)
        // The fifth was finished when the reader asked for the next one, or is read again.
        let committed = fixture.committed[fixture.partition(0)]
        #expect(committed == 5 || committed == 4, "committed \(String(describing: committed))")
        fixture.expectNoMessageLeaked()
    }

    @Test("close from another task while process runs: handlers finish, the finished run is committed, process returns")
    func closeWhileProcessing() async throws {
        let fixture = Fixture(partitions: 2, events: 100)
        let (consumer, client) = try fixture.consumer()
        let handled = Mutex(0)
        let (half, continuation) = AsyncStream<Void>.makeStream()
        let processing = Task {
            try await consumer.process(topics: [fixture.topic], maxConcurrency: 2) { _ in
                let count = handled.withLock { count in
                    count += 1
                    return count
                }
                if count == 50 { continuation.yield() }
            }
        }
        for await _ in half { break }
        await consumer.close()
        let result = await processing.result
        #expect(client.isClosed)
        // process reports that the consumer was closed under it, or returns.
        if case .failure(let error) = result {
            #expect((error as? WorkflowEventsError)?.code == .clientClosed, "process threw \(error)")
        }
        let committed = fixture.committed.values.reduce(0, +)
        #expect(committed >= 50 && committed <= Int64(handled.withLock { $0 }), "committed \(committed) of \(handled.withLock { $0 }) handled")
        fixture.expectNoMessageLeaked()
    }

    @Test("a second close, and closes racing each other, return once the consumer is closed")
    func closesRace() async throws {
        let fixture = Fixture(partitions: 1, events: 10)
        let (consumer, client) = try fixture.consumer()
        try await consumer.subscribe([fixture.topic])
        await withDiscardingTaskGroup { group in
            for _ in 0..<5 { group.addTask { await consumer.close() } }
        }
        #expect(client.isClosed)
        await consumer.close()
        await #expect(throws: WorkflowEventsError.self) { try await consumer.commit() }
    }

    @Test("calls after close throw clientClosed, saying what was asked")
    func callsAfterClose() async throws {
        let fixture = Fixture(partitions: 1, events: 10)
        let (consumer, _) = try fixture.consumer()
        await consumer.close()
        do {
            try await consumer.subscribe([fixture.topic])
            Issue.record("subscribe after close did not throw")
        } catch let error as WorkflowEventsError {
            #expect(error.code == .clientClosed)
            #expect("\(error)".contains("subscribe"), "the error says: \(error)")
        }
        let partition = fixture.partition(0)
        let calls: [(String, @Sendable () async throws -> Void)] = [
            ("poll", { _ = try await consumer.poll() }),
            ("commit", { try await consumer.commit() }),
            ("seek", { try await consumer.seek(partition, to: 0) }),
            ("position", { _ = try await consumer.position(partition) }),
            ("pause", { try await consumer.pause([partition]) }),
        ]
        for (name, call) in calls {
            do {
                try await call()
                Issue.record("\(name) after close did not throw")
            } catch let error as WorkflowEventsError {
                #expect(error.code == .clientClosed, "\(name): \(error)")
                #expect(error.message.contains("closed"), "\(name): \(error)")
            }
        }
        // A stream asked for after close ends at once.
        var iterator = consumer.events(topics: [fixture.topic]).makeAsyncIterator()
        #expect(try await iterator.next() == nil)
    }

    @Test("an idle timeout ends a stream once the member has caught up, not before")
    func idleEndsWhenCaughtUp() async throws {
        let fixture = Fixture(partitions: 2, events: 60)
        let (consumer, _) = try fixture.consumer()
        var count = 0
        for try await _ in consumer.events(topics: [fixture.topic], idleTimeout: .milliseconds(50)) {
            count += 1
        }
        #expect(count == 60)
        await consumer.close()
        #expect(fixture.committed == fixture.endOffsets)
    }

    @Test("an idle timeout does not wait for a partition the application paused")
    func idleIgnoresPausedPartitions() async throws {
        let fixture = Fixture(partitions: 2, events: 40)
        let (consumer, _) = try fixture.consumer()
        try await consumer.pause([fixture.partition(1)])
        let count = try await consumer.consumeEvents(topics: [fixture.topic], timeout: .milliseconds(50)) { _ in }
        #expect(count == 20, "handled \(count): only partition 0's 20 events")
        await consumer.close()
    }

    @Test("health: not ready before the assignment, ready with its partitions and the last event's time while reading, not ready once closed")
    func health() async throws {
        let fixture = Fixture(partitions: 2, events: 20)
        let (consumer, _) = try fixture.consumer()
        let before = await consumer.health
        #expect(!before.isReady && !before.isClosed && before.assignedPartitions.isEmpty && before.lastEventTime == nil, "\(before)")
        var reading: ConsumerHealth?
        for try await _ in consumer.events(topics: [fixture.topic]) {
            reading = await consumer.health
            break
        }
        let during = try #require(reading)
        #expect(during.isReady, "\(during)")
        #expect(during.isGroupMember, "\(during)")
        #expect(during.assignedPartitions == Set(fixture.allPartitions), "\(during)")
        #expect(during.lastEventTime != nil, "\(during)")
        #expect(during.brokersUnreachableFor == nil, "\(during)")
        await consumer.close()
        let after = await consumer.health
        #expect(after.isClosed && !after.isReady, "\(after)")
    }

    @Test("subscribe throws a KafkaError naming the servers when no broker answers")
    func unreachableSubscribe() async throws {
        let fixture = Fixture(partitions: 1, events: 1)
        fixture.kafka.setUnreachable(true)
        let (consumer, _) = try fixture.consumer()
        do {
            try await consumer.subscribe([fixture.topic])
            Issue.record("subscribe did not throw")
        } catch let error as KafkaError {
            #expect(error.message.contains("in-memory:9092"), "the error says: \(error)")
            #expect(error.isRetriable)
        }
        await consumer.close()
    }

    @Test("a fatal error from the client ends the stream with that error; what was finished is committed")
    func fatalErrorEndsStream() async throws {
        let fixture = Fixture(partitions: 1, events: 30)
        let (consumer, client) = try fixture.consumer()
        var count = 0
        do {
            for try await _ in consumer.events(topics: [fixture.topic]) {
                count += 1
                if count == 10 {
                    client.context.state.withLock {
                        $0.errorsToThrow.append(
                            KafkaError(code: .fatal, message: "fenced by a newer instance", operation: "consume", isFatal: true))
                    }
                    client.notify()
                }
            }
            Issue.record("the stream ended without the fatal error, after \(count) events")
        } catch let error as KafkaError {
            #expect(error.isFatal)
            #expect(error.message.contains("fenced"), "the error says: \(error)")
        }
        await consumer.close()
        #expect(fixture.committed[fixture.partition(0)].map { $0 >= 9 } == true, "committed \(fixture.committed)")
        fixture.expectNoMessageLeaked()
    }

    @Test("commit() throws the broker's refusal, naming it")
    func commitRefused() async throws {
        let fixture = Fixture(partitions: 1, events: 10)
        let (consumer, _) = try fixture.consumer(autoCommit: false)
        var count = 0
        for try await _ in consumer.events(topics: [fixture.topic]) {
            count += 1
            if count == 3 { break }
        }
        fixture.kafka.failNextCommit(
            with: KafkaError(code: .init(rawValue: 25), message: "Broker: Unknown member", operation: "commit"))
        await #expect {
            try await consumer.commit()
        } throws: { error in
            "\(error)".contains("Unknown member")
        }
        try await consumer.commit()
        #expect(fixture.committed == [fixture.partition(0): 2])
        await consumer.close()
    }

    @Test("the close says at info level what was committed and how long it took; assignments and revocations are info lines")
    func closeSaysWhatWasCommitted() async throws {
        let fixture = Fixture(partitions: 2, events: 40)
        let (logger, logs) = recordingLogger()
        let (consumer, client) = try fixture.kafka.makeConsumer(fixture.configuration(), logger: logger)
        var count = 0
        for try await _ in consumer.events(topics: [fixture.topic]) {
            count += 1
            if count == 10 { client.revoke([fixture.partition(1)]) }
            if count == 12 { break }
        }
        await consumer.close()
        let info = logs.entries.filter { $0.level == .info }
        let closed = try #require(info.first { "\($0.message)" == "consumer closed" }, "info lines: \(info.map { "\($0.message)" })")
        let committed = fixture.committed.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", ")
        #expect(!fixture.committed.isEmpty)
        #expect(closed.metadata["committed"] == .string(committed), "\(closed.metadata)")
        #expect(closed.metadata["duration"] != nil)
        #expect(info.contains { "\($0.message)" == "partitions assigned" })
        #expect(info.contains { "\($0.message)" == "partitions revoked" })
    }

    @Test("health's lag is known right after the assignment, before any statistics: the end less the next offset to deliver")
    func lagBeforeStatistics() async throws {
        let fixture = Fixture(partitions: 2, events: 40)
        let (consumer, _) = try fixture.consumer()
        #expect(await consumer.health.lag == nil)
        var delivered = 0
        for try await _ in consumer.events(topics: [fixture.topic]) {
            delivered += 1
            if delivered == 1 {
                // The event in hand was delivered: 39 left, as librdkafka counts it.
                let health = await consumer.health
                #expect(health.lagByPartition.count == 2, "\(health.lagByPartition)")
                #expect(health.lag == 39, "\(health.lagByPartition)")
            }
            if delivered == 25 {
                let health = await consumer.health
                #expect(health.lag == 15, "\(health.lagByPartition)")
                break
            }
        }
        await consumer.close()
        #expect(await consumer.health.lag == nil)
    }
}
