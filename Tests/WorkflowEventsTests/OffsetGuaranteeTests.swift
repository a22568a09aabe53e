import Foundation
import Synchronization
import TestSupport
import Testing
import WorkflowEventsTesting

@testable import WorkflowEvents

/// A gate that handlers wait on until the test opens it.
final class Gate: Sendable {
    private let state = Mutex<(open: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    func wait() async {
        await withCheckedContinuation { continuation in
            let resumeNow = state.withLock { state in
                if state.open { return true }
                state.waiters.append(continuation)
                return false
            }
            if resumeNow { continuation.resume() }
        }
    }

    /// Whether a task waits at the gate.
    var isWaiting: Bool { state.withLock { !$0.waiters.isEmpty } }

    func open() {
        let waiters = state.withLock { state in
            state.open = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }
}

/// A set of values many tasks add to.
final class Seen<Value: Hashable & Sendable>: Sendable {
    private let values = Mutex<Set<Value>>([])
    func insert(_ value: Value) { _ = values.withLock { $0.insert(value) } }
    var count: Int { values.withLock { $0.count } }
    var all: Set<Value> { values.withLock { $0 } }
}

/// Where a fresh member of `configuration`'s group starts on partition 0, and its first event's offset.
private func resumePoint(_ configuration: WorkflowEventConsumer.Configuration, topic: String) async throws -> (Int64?, Int64?) {
    try await withWorkflowEventConsumer(configuration: configuration) { next in
        let partition = TopicPartition(topic: topic, partition: 0)
        try await next.subscribe([topic])
        let committed = try await next.committed([partition])[partition]
        let first = try await collect(next.messages(topics: [topic]), count: 1).first?.offset
        return (committed, first)
    }
}

/// A cluster with `topic` of two partitions holding 20 events each.
private func twoPartitionsOfTwenty(_ topic: String) async throws -> MockKafkaCluster {
    let cluster = try MockKafkaCluster()
    try cluster.createTopic(topic, partitions: 2)
    let events = SampleEvents.make(count: 40)
    try await produceRecords(try events[..<20].map { try $0.jsonBytes() }, to: topic, partition: 0, on: cluster)
    try await produceRecords(try events[20...].map { try $0.jsonBytes() }, to: topic, partition: 1, on: cluster)
    return cluster
}

/// Reads one event, pauses `paused` (while messages of it are already fetched), and reads on
/// until `idle` passes without an event: the messages of `paused` fetched meanwhile are held.
private func readThenPause(
    _ consumer: WorkflowEventConsumer, topic: String, paused: [TopicPartition], idle: Duration = .seconds(2)
) async throws -> [WorkflowEventMessage] {
    var delivered: [WorkflowEventMessage] = []
    for try await message in consumer.messages(topics: [topic], idleTimeout: idle) {
        if delivered.isEmpty { try await consumer.pause(paused) }
        delivered.append(message)
    }
    return delivered
}

@Suite("Offsets: nothing unfinished is ever committed")
struct OffsetGuaranteeTests {
    /// The reading APIs a cancellation test runs through.
    enum ReadingAPI: String, CaseIterable, Sendable {
        case stream, consumeEvents, serve, process, batches
    }

    @Test(
        "cancelled while the third handler awaits: its event is not committed, not retried, not dead-lettered, not a failure; the next member gets it",
        arguments: ReadingAPI.allCases)
    func cancellationIsNotCompletion(api: ReadingAPI) async throws {
        let fixture = try await makeFixture(partitions: 1, events: 3)
        defer { fixture.cluster.shutdown() }
        try fixture.cluster.createTopic("dead-letters", partitions: 1)
        var configuration = groupConfiguration(fixture.cluster, group: "cancel-\(api)")
        configuration.deadLetterTopic = "dead-letters"
        configuration.retryPolicy = .init(attempts: 3, initialBackoff: .milliseconds(10))
        let consumer = try WorkflowEventConsumer(configuration: configuration)
        let third = fixture.events[2].eventID
        let (reached, signal) = AsyncStream.makeStream(of: Void.self)
        let calls = Seen<Int>()
        let counter = Atomic<Int>(0)
        let handler: @Sendable (WorkflowEvent) async throws -> Void = { event in
            calls.insert(counter.add(1, ordering: .relaxed).newValue)
            if event.eventID == third {
                signal.yield()
                try await Task.sleep(for: .seconds(60))  // an HTTP call, say: throws when cancelled
            }
        }
        let topics = [fixture.topic]
        let task = Task {
            switch api {
            case .stream:
                for try await event in consumer.events(topics: topics) { try await handler(event) }
            case .consumeEvents:
                try await consumer.consumeEvents(topics: topics, timeout: .seconds(60), handler)
            case .serve:
                try await consumer.serve(topics: topics, handler)
            case .process:
                try await consumer.process(
                    topics: topics, maxConcurrency: 1, limits: .init(drainTimeout: .milliseconds(200)), handler)
            case .batches:
                // Each event its own batch: the first two batches finish, the third is in hand.
                for try await batch in consumer.batches(topics: topics, maxCount: 1) {
                    for message in batch { try await handler(message.event) }
                }
            }
        }
        var iterator = reached.makeAsyncIterator()
        await iterator.next()
        task.cancel()
        _ = await task.result
        try await waitUntil("the consumer closed", timeout: .seconds(10)) { await consumer.isClosed }
        let statistics = await consumer.statistics
        #expect(statistics.handlerFailures == 0)
        #expect(statistics.deadLettered == 0)
        #expect(statistics.handlerRetries == 0)
        #expect(calls.count == 3, "the cancelled handler ran once, and was not retried")
        let (committed, first) = try await resumePoint(configuration, topic: fixture.topic)
        #expect(committed == 2)
        #expect(first == 2)
    }

    @Test("commit() from a process handler commits the finished run only, never past a sibling handler still running")
    func commitFromProcessHandler() async throws {
        let fixture = try await makeFixture(partitions: 1, events: 4)
        defer { fixture.cluster.shutdown() }
        let configuration = groupConfiguration(fixture.cluster, group: "commit-in-process", autoCommit: false)
        let consumer = try WorkflowEventConsumer(configuration: configuration)
        let first = fixture.events[0].eventID
        let (released, release) = AsyncStream.makeStream(of: Void.self)
        let (committed, signal) = AsyncStream.makeStream(of: Void.self)
        let task = Task {
            // Every event its own key: the first holds while the others run, and the last
            // one commits.
            try await consumer.process(
                topics: [fixture.topic], maxConcurrency: 4, orderingKey: .custom { $0.eventID.uuidString },
                limits: .init(drainTimeout: .milliseconds(200))
            ) { event in
                if event.eventID == first {
                    var iterator = released.makeAsyncIterator()
                    await iterator.next()
                } else if event.eventID == fixture.events[3].eventID {
                    try await consumer.commit()
                    signal.yield()
                }
            }
        }
        var iterator = committed.makeAsyncIterator()
        await iterator.next()
        let partition = TopicPartition(topic: fixture.topic, partition: 0)
        let whileHeld = try await consumer.committed([partition])[partition]
        #expect(whileHeld == nil || whileHeld == 0, "committed \(String(describing: whileHeld)) while event 0 was unfinished")
        release.yield()
        task.cancel()
        _ = await task.result
        try await waitUntil("the consumer closed", timeout: .seconds(10)) { await consumer.isClosed }
    }

    @Test("process after subscribe: every event handled, committed offsets exactly at the end")
    func processAfterSubscribe() async throws {
        let fixture = try await makeFixture(partitions: 3, events: 0)
        defer { fixture.cluster.shutdown() }
        var configuration = groupConfiguration(fixture.cluster, group: "subscribe-then-process")
        configuration.properties["max.poll.interval.ms"] = "6000"
        let consumer = try WorkflowEventConsumer(configuration: configuration)
        try await consumer.subscribe([fixture.topic])
        let events = SampleEvents.make(count: 1_000, workflows: 50)
        let handled = Seen<UUID>()
        let processing = Task {
            try await consumer.process(topics: [fixture.topic], maxConcurrency: 8) { event in handled.insert(event.eventID) }
        }
        let producer = try WorkflowEventProducer(bootstrapServers: fixture.cluster.bootstrapServers)
        var reports: [DeliveryReport] = []
        for chunk in stride(from: 0, to: events.count, by: 50) {
            reports += try await producer.send(Array(events[chunk..<chunk + 50]), to: fixture.topic)
            try await Task.sleep(for: .milliseconds(250))  // paces the producer over 5 s
        }
        await producer.close()
        try await waitUntil("all 1,000 events handled", timeout: .seconds(60)) { handled.count == 1_000 }
        processing.cancel()
        try await processing.value
        #expect(handled.all == Set(events.map(\.eventID)))
        var ends: [TopicPartition: Int64] = [:]
        for report in reports {
            let partition = TopicPartition(topic: report.topic, partition: report.partition)
            ends[partition] = max(ends[partition] ?? 0, report.offset + 1)
        }
        let expected = ends
        let committed = try await withWorkflowEventConsumer(configuration: configuration) { check in
            try await check.committed(Array(expected.keys))
        }
        #expect(committed == expected)
    }

    @Test("a partition process paused at its limit is resumed after a rebalance: every event handled")
    func pausedPartitionSurvivesRebalance() async throws {
        let cluster = try MockKafkaCluster()
        defer { cluster.shutdown() }
        let topic = "paused-across-rebalance"
        try cluster.createTopic(topic, partitions: 2)
        let events = SampleEvents.make(count: 100, workflows: 100)
        try await produceRecords(try events.map { try $0.jsonBytes() }, to: topic, partition: 0, on: cluster)
        let configuration = groupConfiguration(cluster, group: "paused-rebalance")
        let consumer = try WorkflowEventConsumer(configuration: configuration)
        let gate = Gate()
        let started = Atomic<Int>(0)
        let handled = Seen<UUID>()
        let processing = Task {
            try await consumer.process(
                topics: [topic], maxConcurrency: 2,
                limits: .init(maxBufferedEvents: 1_000, maxBufferedEventsPerPartition: 5, drainTimeout: .milliseconds(500))
            ) { event in
                started.add(1, ordering: .relaxed)
                await gate.wait()
                handled.insert(event.eventID)
            }
        }
        try await waitUntil("handlers started and the partition filled", timeout: .seconds(30)) {
            started.load(ordering: .relaxed) >= 2
        }
        try await waitUntil("the partition holds its limit, and is paused", timeout: .seconds(30)) {
            await consumer.statistics.peakEventsInProcessing >= 5
        }
        let second = try WorkflowEventConsumer(configuration: configuration)
        try await second.subscribe([topic])
        try await waitUntil("the second member owns a partition", timeout: .seconds(30)) { await !second.assignment.isEmpty }
        await second.close()
        try await waitUntil("the first member owns both partitions again", timeout: .seconds(30)) {
            await consumer.assignment.count == 2
        }
        gate.open()
        try await waitUntil(
            "all 100 events handled", timeout: .seconds(60),
            saw: {
                let statistics = await consumer.statistics
                let held = consumer.context.pausedInClient.withLock { $0 }
                return
                    "\(handled.count) handled; assignment \(await consumer.assignment.sorted()); paused in librdkafka \(held.sorted()); peak in processing \(statistics.peakEventsInProcessing), rebalances \(statistics.rebalances), delivered \(statistics.eventsDelivered)"
            }, { handled.count == 100 })
        processing.cancel()
        try await processing.value
    }

    @Test("process cancelled after its first 100 events returns within 5 s, with 100,000 events waiting (20 rounds)")
    func processReturnsPromptly() async throws {
        let fixture = try await makeFixture(partitions: 32, events: 0)
        defer { fixture.cluster.shutdown() }
        let producer = try WorkflowEventProducer(
            configuration: .init(bootstrapServers: fixture.cluster.bootstrapServers, linger: .milliseconds(50)))
        let events = SampleEvents.make(count: 100_000, workflows: 5_000)
        for chunk in stride(from: 0, to: events.count, by: 20_000) {
            _ = try await producer.send(Array(events[chunk..<chunk + 20_000]), to: fixture.topic)
        }
        await producer.close()
        for round in 0..<20 {
            let consumer = try WorkflowEventConsumer(
                configuration: .init(bootstrapServers: fixture.cluster.bootstrapServers))
            let handled = Atomic<Int>(0)
            let processing = Task {
                try await consumer.process(topics: [fixture.topic], maxConcurrency: 1) { _ in
                    handled.add(1, ordering: .relaxed)
                }
            }
            // Cancelled once events are flowing: the fetcher busy, batches on their way.
            try await waitUntil("round \(round): 100 events handled", timeout: .seconds(60)) {
                handled.load(ordering: .relaxed) >= 100
            }
            let cancelled = ContinuousClock.now
            processing.cancel()
            let returned = Atomic<Bool>(false)
            let waiter = Task {
                _ = await processing.result
                returned.store(true, ordering: .releasing)
            }
            try await waitUntil("round \(round): process returned", timeout: .seconds(5)) { returned.load(ordering: .acquiring) }
            _ = await waiter.value
            #expect(ContinuousClock.now - cancelled < .seconds(5))
            #expect(await consumer.isClosed)
        }
    }

    @Test("poll never stores a record it did not return: an error after records in a batch waits for the next poll")
    func pollStoresOnlyReturnedRecords() async throws {
        let topic = "poll-errors"
        let cluster = try await twoPartitionsOfTwenty(topic)
        defer { cluster.shutdown() }
        let zero = TopicPartition(topic: topic, partition: 0)
        for round in 0..<3 {
            var configuration = groupConfiguration(cluster, group: "poll-errors-\(round)", autoCommit: false)
            configuration.autoOffsetReset = .none
            // Partition 0 has a committed offset; partition 1 has none, which .none makes an error.
            try await withWorkflowEventConsumer(configuration: configuration) { consumer in
                try await consumer.subscribe([topic])
                try await waitUntil("assigned", timeout: .seconds(30)) { await consumer.assignment.count == 2 }
                try await consumer.commit([zero: 0])
            }
            try await withWorkflowEventConsumer(configuration: configuration) { consumer in
                try await consumer.subscribe([topic])
                var returned: [Int64] = []
                var threw = false
                let deadline = ContinuousClock.now.advanced(by: .seconds(20))
                while ContinuousClock.now < deadline, returned.count < 20 || !threw {
                    do {
                        let records = try await consumer.poll(timeout: .milliseconds(200))
                        returned += records[zero]?.map(\.offset) ?? []
                    } catch let error as KafkaError {
                        #expect(error.code == .autoOffsetReset)
                        threw = true
                        try await consumer.commit()
                        let committed = try await consumer.committed([zero])[zero] ?? 0
                        // Only records poll returned (and a later poll, commit or close) count.
                        #expect(committed == (returned.last.map { $0 + 1 } ?? 0))
                    }
                }
                #expect(threw)
                #expect(returned == Array(0..<20))
            }
        }
    }

    @Test("partitions paused and resumed while events are fetched: every event is delivered once, in order (2 rounds)")
    func pauseResumeWhileFetching() async throws {
        // librdkafka before 2.1 drops from a batch call in progress the messages of a
        // partition paused or resumed meanwhile, after moving the partition's position past
        // them: they would never be read.
        let fixture = try await makeFixture(partitions: 4, events: 20_000)
        defer { fixture.cluster.shutdown() }
        let expected = Dictionary(grouping: fixture.reports, by: \.partition).mapValues { Int64($0.count) }
        let partitions = (0..<4).map { TopicPartition(topic: fixture.topic, partition: Int32($0)) }
        for round in 0..<2 {
            let consumer = try WorkflowEventConsumer(configuration: .init(bootstrapServers: fixture.cluster.bootstrapServers))
            let toggles = Tally()
            let toggling = Task {
                var next = 0
                while !Task.isCancelled {
                    let partition = partitions[next % partitions.count]
                    try await consumer.pause([partition])
                    await Task.yield()
                    try await consumer.resume([partition])
                    toggles.add()
                    next += 1
                }
            }
            var seen: [Int32: [Int64]] = [:]
            var count = 0
            for try await message in consumer.messages(topics: [fixture.topic], idleTimeout: .seconds(5)) {
                seen[message.partition, default: []].append(message.offset)
                count += 1
                if count == fixture.events.count { break }
            }
            toggling.cancel()
            _ = await toggling.result
            // Enough to overlap many fetches (about 40 per round with the whole suite running).
            #expect(toggles.count >= 20, "round \(round): \(toggles.count) pauses and resumes")
            for (partition, total) in expected {
                let offsets = seen[partition] ?? []
                let missing = Set(0..<total).subtracting(offsets)
                #expect(
                    offsets == Array(0..<total),
                    "round \(round), partition \(partition): \(offsets.count) of \(total) delivered, \(missing.count) missing (the first \(missing.sorted().prefix(5)))"
                )
            }
            await consumer.close()
        }
    }

    @Test("resuming partitions that are not paused, or pausing them before they are assigned, changes nothing: each event once, in order")
    func resumeWithoutPause() async throws {
        // librdkafka before 2.1 starts a partition's fetch again from where it was last
        // assigned, paused or sought whenever it is resumed, paused or not: a resume of a
        // partition that was never paused went back to its first offset.
        let fixture = try await makeFixture(partitions: 2, events: 2_000)
        defer { fixture.cluster.shutdown() }
        let expected = Dictionary(grouping: fixture.reports, by: \.partition).mapValues { Int64($0.count) }
        let partitions = (0..<2).map { TopicPartition(topic: fixture.topic, partition: Int32($0)) }
        let consumer = try WorkflowEventConsumer(configuration: .init(bootstrapServers: fixture.cluster.bootstrapServers))
        // Paused before any assignment, when librdkafka does not know the partition yet.
        try await consumer.pause([partitions[1]])
        try await consumer.assign(partitions)
        var seen: [Int32: [Int64]] = [:]
        var count = 0
        for try await message in consumer.messages(topics: [fixture.topic], idleTimeout: .seconds(5)) {
            seen[message.partition, default: []].append(message.offset)
            count += 1
            if count == 300 {
                #expect(seen[1] == nil, "partition 1 was paused, and delivered \(seen[1]?.count ?? 0) events")
                try await consumer.resume([partitions[1]])
            }
            // Then every 150 events, both are resumed again, not having been paused.
            if count > 300 && count % 150 == 0 { try await consumer.resume(partitions) }
            if count == fixture.events.count { break }
        }
        for (partition, total) in expected.sorted(by: { $0.key < $1.key }) {
            let offsets = seen[partition] ?? []
            #expect(offsetRuns(offsets) == "0-\(total - 1)", "partition \(partition): delivered offsets in this order")
        }
        await consumer.close()
    }

    @Test("a consumer released without close, holding messages of a paused partition, destroys its handle")
    func releasedConsumerDestroysHeldMessages() async throws {
        let fixture = try await makeFixture(partitions: 2, events: 200)
        defer { fixture.cluster.shutdown() }
        weak var client: RDKafkaConsumerClient?
        do {
            let consumer = try WorkflowEventConsumer(configuration: .init(bootstrapServers: fixture.cluster.bootstrapServers))
            client = consumer.client as? RDKafkaConsumerClient
            let read = try await readThenPause(
                consumer, topic: fixture.topic, paused: [TopicPartition(topic: fixture.topic, partition: 0)])
            #expect(read.count < 200)
        }
        try await waitUntil("the released consumer's handle destroyed", timeout: .seconds(10)) { client == nil }
    }

    @Test("a producer released without close ends its polling thread and destroys its handle")
    func releasedProducerIsDestroyed() async throws {
        let fixture = try await makeFixture(partitions: 1, events: 0)
        defer { fixture.cluster.shutdown() }
        weak var client: RDKafkaProducerClient?
        do {
            let producer = try WorkflowEventProducer(bootstrapServers: fixture.cluster.bootstrapServers)
            client = producer.client
            _ = try await producer.send(SampleEvents.make(count: 1)[0], to: fixture.topic)
        }
        try await waitUntil("the released producer's handle destroyed", timeout: .seconds(10)) { client == nil }
    }

    @Test("send([events]) that fails part-way leaves no delivery waiting, and says what was sent")
    func failedBatchSendLeavesNothingBehind() async throws {
        let fixture = try await makeFixture(partitions: 1, events: 0)
        defer { fixture.cluster.shutdown() }
        let producer = try WorkflowEventProducer(bootstrapServers: fixture.cluster.bootstrapServers)
        var events = SampleEvents.make(count: 10)
        events[6].payload.data["ratio"] = .double(.nan)  // not representable in JSON
        let error = await #expect(throws: WorkflowEventsError.self) {
            _ = try await producer.send(events, to: fixture.topic)
        }
        #expect(error?.code == .invalidEvent)
        #expect(error?.message.contains("event 6") == true)
        try await producer.flush()
        let pending = producer.client.deliveries.pendingCount
        #expect(pending == 0)
        await producer.close()
    }

    @Test("a standby member that owns no partition in a stable group is ready")
    func standbyIsReady() async throws {
        let fixture = try await makeFixture(partitions: 1, events: 0)
        defer { fixture.cluster.shutdown() }
        let configuration = groupConfiguration(fixture.cluster, group: "standby")
        let a = try WorkflowEventConsumer(configuration: configuration)
        let b = try WorkflowEventConsumer(configuration: configuration)
        try await a.subscribe([fixture.topic])
        try await b.subscribe([fixture.topic])
        try await waitUntil("one member owns the partition and both are ready", timeout: .seconds(30)) {
            let (healthA, healthB) = (await a.health, await b.health)
            return healthA.assignedPartitions.count + healthB.assignedPartitions.count == 1 && healthA.isReady
                && healthB.isReady
        }
        await a.close()
        await b.close()
        #expect(await !a.health.isReady)
    }
}

/// A stream works through a batch of events without asking the consumer for each: what it
/// finished inside the batch must still be what a revocation commits.
@Suite("Offsets: a revocation inside a stream's batch", .serialized)
struct RevocationInsideBatchTests {
    @Test(
        "partitions revoked while a stream is inside its batch: the new owner starts right after the last finished event",
        arguments: BrokerImplementation.allCases)
    func revokedInsideBatch(broker: BrokerImplementation) async throws {
        let cluster = try await broker.makeCluster()
        defer { cluster.shutdown() }
        let topic = "workflow-events"
        try await cluster.createTopic(topic, partitions: 4)
        // Small producer batches, partition after partition: librdkafka's queue then holds the
        // partitions interleaved, so that a stream's batch spans all of them.
        let events = try SampleEvents.make(count: 800).map { try $0.jsonBytes() }
        for round in 0..<20 {
            for partition in 0..<4 {
                let start = (round * 4 + partition) * 10
                try await produceRecords(Array(events[start..<start + 10]), to: topic, partition: Int32(partition), on: cluster)
            }
        }
        try await letFollowersSyncFirst(cluster)
        var configuration = groupConfiguration(cluster, group: "inside-batch")
        configuration.properties["partition.assignment.strategy"] = "cooperative-sticky"
        // Only the revocation commits: the periodic commit would not come within the test.
        configuration.autoCommitInterval = .seconds(120)
        let first = try WorkflowEventConsumer(configuration: configuration)
        let finishedByFirst = Mutex<[TopicPartition: [Int64]]>([:])
        let gate = Gate()
        let firstTask = Task {
            var count = 0
            for try await message in first.messages(topics: [topic]) {
                count += 1
                // At least 80 events finish, on every partition (whichever moves has finished
                // events, however the broker batches them); the next waits in hand, inside a
                // batch that holds events finished since the stream last asked for a batch.
                let finishedEverywhere = finishedByFirst.withLock { $0.count == 4 }
                if count > 80 && finishedEverywhere { await gate.wait() }
                finishedByFirst.withLock { $0[message.topicPartition, default: []].append(message.offset) }
            }
        }
        try await waitUntil("the first member has finished 80 events on every partition", timeout: .seconds(30)) {
            gate.isWaiting
        }
        let second: JoiningMember
        do {
            second = try await JoiningMember(configuration, topic: topic)
        } catch {
            let health = await first.health
            Issue.record(
                "the first member meanwhile (its stream holding an event): owns [\(health.assignedPartitions.sorted().map(\.description).joined(separator: ", "))], rebalances \(await first.statistics.rebalances), group member \(health.isGroupMember), last error \(health.lastError ?? "none")"
            )
            gate.open()
            firstTask.cancel()
            _ = await firstTask.result
            await first.close()
            throw error
        }
        let moved = await second.consumer.assignment
        let finished = finishedByFirst.withLock { $0 }
        gate.open()
        firstTask.cancel()
        _ = await firstTask.result
        await second.stop()
        await first.close()
        await second.consumer.close()

        let startOfSecond = second.firstOffsets
        let refused = await first.statistics.commitFailures
        var exact = 0
        for partition in moved {
            let next = (finished[partition]?.last).map { $0 + 1 } ?? 0
            let start = try #require(startOfSecond[partition])
            // Never past what the first member finished.
            #expect(start <= next, "\(partition): finished up to \(next), the new owner started at \(start)")
            if start == next { exact += 1 }
        }
        // Exactly after it, unless the broker refused the revocation's commit (counted).
        #expect(exact == moved.count || refused > 0, "\(broker): exact on \(exact) of \(moved.count) partitions, no commit refused")
        // The test means something only if a partition that moved had finished events.
        #expect(moved.contains { finished[$0]?.isEmpty == false })
        print(
            "FIGURE revocation inside a batch (\(broker)) | exactly after the last finished event=\(exact)/\(moved.count) | commits refused=\(refused)"
        )
    }
}
