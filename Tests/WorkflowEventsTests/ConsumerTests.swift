import Foundation
import InMemoryLogging
import Logging
import Synchronization
import TestSupport
import Testing
import WorkflowEvents
import WorkflowEventsTesting

@Suite("Consumer")
struct ConsumerTests {
    @Test("a consumer with the default settings reads from the earliest offset")
    func readsFromEarliest() async throws {
        let fixture = try await makeFixture(partitions: 1, events: 5)
        defer { fixture.cluster.shutdown() }
        let consumer = try WorkflowEventConsumer(bootstrapServers: fixture.cluster.bootstrapServers)
        let received = try await collect(consumer.messages(topics: [fixture.topic]), count: 5)
        await consumer.close()
        #expect(received.map(\.offset) == [0, 1, 2, 3, 4])
        #expect(received.map(\.event) == fixture.events)
    }

    @Test("a group reads every event, in order per partition, with key, headers and timestamp")
    func orderPerPartition() async throws {
        let fixture = try await makeFixture(partitions: 3, events: 300)
        defer { fixture.cluster.shutdown() }
        let received = try await withWorkflowEventConsumer(
            configuration: groupConfiguration(fixture.cluster, group: "order")
        ) { consumer in
            try await collect(consumer.messages(topics: [fixture.topic]), count: 300)
        }
        #expect(Set(received.map(\.event.eventID)) == Set(fixture.events.map(\.eventID)))
        for partition in Int32(0)..<3 {
            let offsets = received.filter { $0.partition == partition }.map(\.offset)
            #expect(offsets == Array(0..<Int64(offsets.count)), "partition \(partition) out of order")
        }
        // One workflow's events keep their order: they share a key, so a partition.
        let sequence = { (message: WorkflowEventMessage) in Int(message.event.metadata["sequence"]!)! }
        for workflow in Set(fixture.events.map(\.workflowID)) {
            let seen = received.filter { $0.event.workflowID == workflow }.map(sequence)
            #expect(seen == seen.sorted(), "\(workflow) out of order")
        }
        let first = try #require(received.first)
        #expect(first.key == Array(first.event.workflowID.utf8))
        #expect(first.headers.string("content-type") == "application/json")
        #expect(first.headers.string("event-type") == first.event.eventType.rawValue)
        #expect(first.topic == fixture.topic)
        #expect(first.timestamp != nil)
    }

    @Test("seek makes the given offset the next one read, and position reports it")
    func seekAndPosition() async throws {
        let fixture = try await makeFixture(partitions: 1, events: 200)
        defer { fixture.cluster.shutdown() }
        let partition = TopicPartition(topic: fixture.topic, partition: 0)
        try await withWorkflowEventConsumer(configuration: groupConfiguration(fixture.cluster, group: "seek")) { consumer in
            try await consumer.subscribe([fixture.topic])
            // Right after subscribe: waits for the assignment.
            #expect(try await consumer.position(partition) == 0)
            try await consumer.seek(partition, to: 100)
            #expect(try await consumer.position(partition) == 100)
            let first = try await collect(consumer.messages(topics: [fixture.topic]), count: 10)
            #expect(first.map(\.offset) == Array(100..<110))
            // The loop broke with 109 in hand: not processed, so it is the next one read.
            #expect(try await consumer.position(partition) == 109)
            // A seek back, in the middle of reading.
            try await consumer.seek(partition, to: 3)
            let again = try await collect(consumer.messages(topics: [fixture.topic]), count: 2)
            #expect(again.map(\.offset) == [3, 4])
            await #expect(throws: WorkflowEventsError.self) {
                try await consumer.seek(TopicPartition(topic: fixture.topic, partition: 7), to: 0)
            }
        }
    }

    @Test("seek before the first assignment, with no group, and position of an untouched partition")
    func seekWithoutGroup() async throws {
        let fixture = try await makeFixture(partitions: 2, events: 60)
        defer { fixture.cluster.shutdown() }
        let counts = Dictionary(grouping: fixture.reports, by: \.partition).mapValues(\.count)
        let consumer = try WorkflowEventConsumer(
            configuration: .init(bootstrapServers: fixture.cluster.bootstrapServers, autoOffsetReset: .latest))
        try await consumer.subscribe([fixture.topic])
        let p0 = TopicPartition(topic: fixture.topic, partition: 0)
        let p1 = TopicPartition(topic: fixture.topic, partition: 1)
        #expect(try await consumer.position(p1) == Int64(counts[1]!))
        try await consumer.seek(p0, to: 2)
        let received = try await collect(consumer.messages(topics: [fixture.topic]), count: counts[0]! - 2)
        #expect(received.map(\.offset) == Array(2..<Int64(counts[0]!)))
        #expect(received.allSatisfy { $0.partition == 0 })
        await consumer.close()
    }

    @Test("auto-commit stores an event's offset only after the loop body returned")
    func autoCommitAfterProcessing() async throws {
        let fixture = try await makeFixture(partitions: 1, events: 20)
        defer { fixture.cluster.shutdown() }
        var configuration = groupConfiguration(fixture.cluster, group: "processed")
        configuration.autoCommitInterval = .milliseconds(100)
        let partition = TopicPartition(topic: fixture.topic, partition: 0)
        try await withWorkflowEventConsumer(configuration: configuration) { consumer in
            var iterator = consumer.events(topics: [fixture.topic]).makeAsyncIterator()
            for _ in 0..<5 { _ = try await iterator.next() }
            // Events 0-3 are processed; event 4 is in hand: the commit must stop at 4.
            try await waitUntil("auto-commit of offset 4") {
                try await consumer.committed([partition])[partition] == 4
            }
            try await Task.sleep(for: .milliseconds(400))
            #expect(try await consumer.committed([partition])[partition] == 4)
        }
    }

    @Test("two consumers of one group split three partitions and read each event once")
    func groupSplit() async throws {
        // Events are produced once the group is stable: a member that joins late makes the
        // mock cluster refuse commits during the rebalance, and the events read before it
        // would be read again (a real broker accepts them).
        let fixture = try await makeFixture(partitions: 3, events: 0)
        defer { fixture.cluster.shutdown() }
        let events = SampleEvents.make(count: 90)
        let configuration = groupConfiguration(fixture.cluster, group: "split")
        let a = try WorkflowEventConsumer(configuration: configuration)
        let b = try WorkflowEventConsumer(configuration: configuration)
        // Both serve until the group has read all 90 (no idle timeout to outlast: on a loaded
        // machine the join, the mock's held rebalance and producing can take many seconds).
        let total = Tally()
        let read = try await withThrowingTaskGroup(of: [UUID]?.self) { group in
            for consumer in [a, b] {
                group.addTask {
                    var seen: [UUID] = []
                    _ = try await consumer.serve(topics: [fixture.topic]) { event in
                        seen.append(event.eventID)
                        total.add()
                    }
                    return seen
                }
            }
            group.addTask {
                try await waitUntil("both members own partitions", timeout: .seconds(30)) {
                    let assignmentA = await a.assignment
                    let assignmentB = await b.assignment
                    return !assignmentA.isEmpty && !assignmentB.isEmpty && assignmentA.union(assignmentB).count == 3
                }
                _ = try await produce(events, to: fixture.topic, on: fixture.cluster)
                defer {
                    a.stopServing()
                    b.stopServing()
                }
                try await waitUntil("the group read every event", timeout: .seconds(60)) { total.count >= 90 }
                return nil
            }
            var all: [[UUID]] = []
            for try await seen in group { if let seen { all.append(seen) } }
            return all
        }
        #expect(read.count == 2)
        #expect(read.allSatisfy { !$0.isEmpty })
        #expect(read.joined().count == 90)
        #expect(Set(read.joined()) == Set(events.map(\.eventID)))
        let assignmentA = await a.assignment
        let assignmentB = await b.assignment
        #expect(!assignmentA.isEmpty && !assignmentB.isEmpty)
        #expect(assignmentA.isDisjoint(with: assignmentB))
        #expect(assignmentA.union(assignmentB).count == 3)
        await a.close()
        await b.close()
    }

    @Test("an unreachable bootstrap server is a thrown KafkaError within the connection timeout")
    func unreachableBroker() async throws {
        let consumer = try WorkflowEventConsumer(
            configuration: .init(bootstrapServers: "127.0.0.1:1", groupID: "nowhere", connectionTimeout: .seconds(2)))
        do {
            try await consumer.subscribe(["workflow-events"])
            Issue.record("subscribe to an unreachable cluster succeeded")
        } catch let error as KafkaError {
            #expect(error.message.contains("no bootstrap server of '127.0.0.1:1' answered within 2.0 seconds"))
            #expect(error.isRetriable)
        }
        await consumer.close()
        // How long: timed in a process of its own. In this one, the suite's start fills the
        // two threads of Swift's cooperative pool with other tests' setup (events generated
        // and produced by the thousand): the error, thrown after 2.0 s, reached this test
        // 10-12 s later.
        let child = try await ChildProcess(
            "ReliabilityConsumer", ["--bootstrap-servers", "127.0.0.1:1", "--subscribe-timeout-ms", "2000"]
        ).wait(timeout: .seconds(60))
        let line = try #require(
            child.stdoutLines.first { $0.hasPrefix("subscribe seconds=") }, "the child printed: \(child.stdout) \(child.stderr)")
        let seconds = try #require(Double(line.split(separator: " ")[1].dropFirst("seconds=".count)))
        #expect(line.contains("threw=KafkaError retriable=true"), "\(line)")
        // The timeout, and the little it takes to hear of it (a busy machine: a second more).
        #expect(seconds >= 1.9 && seconds < 3.5, "subscribe threw after \(seconds) s, against a connection timeout of 2 s")
    }

    @Test("leaving the scope closes the consumer, also when the body throws")
    func scopedClose() async throws {
        let fixture = try await makeFixture(partitions: 1, events: 3)
        defer { fixture.cluster.shutdown() }
        let holder = ConsumerHolder()
        await #expect(throws: TimedOut.self) {
            try await withWorkflowEventConsumer(bootstrapServers: fixture.cluster.bootstrapServers) { consumer in
                holder.set(consumer)
                _ = try await collect(consumer.messages(topics: [fixture.topic]), count: 1)
                throw TimedOut(description: "thrown by the body")
            }
        }
        let consumer = try #require(holder.get())
        #expect(await consumer.isClosed)
    }

    @Test("a reader slower than librdkafka's fetcher, with small prefetch limits, reads every event in order")
    func slowReaderSmallPrefetch() async throws {
        let fixture = try await makeFixture(partitions: 3, events: 6_000)
        defer { fixture.cluster.shutdown() }
        var configuration = WorkflowEventConsumer.Configuration(bootstrapServers: fixture.cluster.bootstrapServers)
        // librdkafka stops fetching at 200 queued messages: the reader below lets it get there.
        configuration.properties = ["queued.min.messages": "200"]
        configuration.fetchBatchSize = 50
        let consumer = try WorkflowEventConsumer(configuration: configuration)
        var seen: [TopicPartition: [Int64]] = [:]
        var count = 0
        for try await message in consumer.messages(topics: [fixture.topic]) {
            seen[message.topicPartition, default: []].append(message.offset)
            count += 1
            if count % 500 == 0 { try await Task.sleep(for: .milliseconds(20)) }
            if count == 6_000 { break }
        }
        let produced = Dictionary(grouping: fixture.reports, by: \.partition).mapValues { $0.map(\.offset).sorted() }
        for (partition, offsets) in produced {
            #expect(seen[TopicPartition(topic: fixture.topic, partition: partition)] == offsets)
        }
        // The queue reached librdkafka's limit and ran low again: before 2.1 the fetcher is
        // woken (it would otherwise wait up to a second each time); later versions need not.
        let wakeUps = await consumer.statistics.fetcherWakeUps
        if WorkflowEventConsumer.wakesLibrdkafkaFetcher {
            #expect(wakeUps > 0, "librdkafka \(WorkflowEventConsumer.librdkafkaVersion)")
        } else {
            #expect(wakeUps == 0, "librdkafka \(WorkflowEventConsumer.librdkafkaVersion)")
        }
        await consumer.close()
    }
}

/// A count several tasks add to.
final class Tally: Sendable {
    private let value = Mutex(0)
    func add() { value.withLock { $0 += 1 } }
    var count: Int { value.withLock { $0 } }
}

final class ConsumerHolder: @unchecked Sendable {
    private let lock = NSLock()
    private var consumer: WorkflowEventConsumer?
    func set(_ value: WorkflowEventConsumer) { lock.withLock { consumer = value } }
    func get() -> WorkflowEventConsumer? { lock.withLock { consumer } }
}
