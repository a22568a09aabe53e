import Foundation
import InMemoryLogging
import Logging
import Synchronization
import TestSupport
import Testing
import WorkflowEvents
import WorkflowEventsTesting

/// Hostile input, dead letters and retries.
@Suite("Reliability: input")
struct InputTests {
    /// Valid events interleaved with every hostile case: valid, bad, valid, bad... ending bad.
    static func interleaved(valid: [WorkflowEvent]) throws -> (values: [[UInt8]?], bad: [HostileInputs.Case]) {
        let bad =
            (HostileInputs.contractRules.filter { $0.expectedCode != nil } + HostileInputs.extremes)
            + [HostileInputs.Case("a null value", nil, nil, nil)]
        precondition(valid.count == bad.count)
        var values: [[UInt8]?] = []
        for (event, hostile) in zip(valid, bad) {
            values.append(try event.jsonBytes())
            values.append(hostile.value)
        }
        return (values, bad)
    }

    @Test("hostile input among valid events: every valid event in order, each bad one logged, counted, skipped once, committed")
    func hostileInput() async throws {
        let cluster = try MockKafkaCluster()
        defer { cluster.shutdown() }
        try cluster.createTopic("hostile", partitions: 1)
        let badCount = HostileInputs.contractRules.filter { $0.expectedCode != nil }.count + HostileInputs.extremes.count + 1
        let valid = SampleEvents.make(count: badCount)
        let (values, bad) = try Self.interleaved(valid: valid)
        try await produceRecords(values, to: "hostile", on: cluster)

        let (logger, logs) = recordingLogger()
        let configuration = groupConfiguration(cluster, group: "hostile")
        let (received, statistics) = try await withWorkflowEventConsumer(configuration: configuration, logger: logger) {
            consumer in
            var received: [WorkflowEventMessage] = []
            for try await message in consumer.messages(topics: ["hostile"], idleTimeout: .seconds(2)) {
                received.append(message)
            }
            return (received, await consumer.statistics)
        }
        #expect(received.map(\.event) == valid)
        #expect(received.map(\.offset) == Array(stride(from: Int64(0), to: Int64(values.count), by: 2)))
        #expect(statistics.invalidEvents == bad.count - 1)
        #expect(statistics.tombstones == 1)
        // Each bad one logged once, with its offset.
        let skipped = logs.entries.filter { $0.message.description == "skipped an invalid event" }
        let skippedOffsets = skipped.compactMap { $0.metadata["kafka.offset"].map { "\($0)" } }.compactMap { Int64($0) }
        let badOffsets = stride(from: Int64(1), to: Int64(values.count), by: 2).filter { values[Int($0)] != nil }
        #expect(skippedOffsets == badOffsets)
        for entry in skipped {
            #expect(entry.metadata["reason"].map { "\($0)".hasPrefix("invalid workflow event: ") } == true)
        }
        // Committed to the end: the last message, a bad one, included.
        let committed = try await withWorkflowEventConsumer(configuration: configuration) { consumer in
            try await consumer.committed([TopicPartition(topic: "hostile", partition: 0)])
        }
        #expect(committed[TopicPartition(topic: "hostile", partition: 0)] == Int64(values.count))
        figure(
            "hostile input",
            [
                "valid events": "\(valid.count)", "bad inputs": "\(bad.count)",
                "delivered in order": "\(received.count)", "skipped": "\(statistics.invalidEvents + statistics.tombstones)",
                "lost": "\(valid.count - received.count)", "committed": "\(committed.values.first ?? -1)/\(values.count)",
            ])
    }

    @Test("invalid messages go to the dead-letter topic unchanged, with why, where from and when")
    func deadLetters() async throws {
        let cluster = try MockKafkaCluster()
        defer { cluster.shutdown() }
        try cluster.createTopic("orders", partitions: 1)
        try cluster.createTopic("orders.dead-letters", partitions: 1)
        let badCount = HostileInputs.contractRules.filter { $0.expectedCode != nil }.count + HostileInputs.extremes.count + 1
        let valid = SampleEvents.make(count: badCount)
        let (values, bad) = try Self.interleaved(valid: valid)
        try await produceRecords(values, to: "orders", on: cluster)

        var configuration = groupConfiguration(cluster, group: "dead-letters")
        configuration.deadLetterTopic = "orders.dead-letters"
        let before = Date()
        let (received, statistics) = try await withWorkflowEventConsumer(configuration: configuration) { consumer in
            var received: [WorkflowEvent] = []
            for try await event in consumer.events(topics: ["orders"], idleTimeout: .seconds(2)) { received.append(event) }
            return (received, await consumer.statistics)
        }
        #expect(received == valid)
        // The null value is a tombstone: skipped, not dead-lettered.
        let expected = bad.enumerated().filter { $0.element.value != nil }
        #expect(statistics.deadLettered == expected.count)

        let letters = try await readRecords(cluster, topic: "orders.dead-letters", count: expected.count)
        #expect(letters.count == expected.count)
        for (letter, (index, hostile)) in zip(letters, expected) {
            let sourceOffset = Int64(2 * index + 1)
            #expect(letter.value == hostile.value, "\(hostile.name): value changed")
            #expect(letter.key == Array("k".utf8), "\(hostile.name): key changed")
            #expect(letter.headers.string(WorkflowEventConsumer.DeadLetterHeader.kind) == "invalid-event")
            #expect(letter.headers.string(WorkflowEventConsumer.DeadLetterHeader.topic) == "orders")
            #expect(letter.headers.string(WorkflowEventConsumer.DeadLetterHeader.partition) == "0")
            #expect(letter.headers.string(WorkflowEventConsumer.DeadLetterHeader.offset) == String(sourceOffset))
            let reason = letter.headers.string(WorkflowEventConsumer.DeadLetterHeader.reason) ?? ""
            #expect(reason.hasPrefix("invalid workflow event"), "\(hostile.name): \(reason)")
            let time = try #require(letter.headers.string(WorkflowEventConsumer.DeadLetterHeader.time))
            let when = try #require(try? Date(time, strategy: .iso8601))
            #expect(when >= before.addingTimeInterval(-1) && when <= Date().addingTimeInterval(1))
        }
        let committed = try await withWorkflowEventConsumer(configuration: configuration) { consumer in
            try await consumer.committed([TopicPartition(topic: "orders", partition: 0)])
        }
        #expect(committed[TopicPartition(topic: "orders", partition: 0)] == Int64(values.count))
        figure(
            "dead letters",
            ["invalid messages": "\(expected.count)", "dead-lettered unchanged": "\(letters.count)", "valid delivered": "\(received.count)"])
    }

    @Test("a throwing handler is retried with backoff, then its event is dead-lettered; the rest go on")
    func retriesThenDeadLetter() async throws {
        let cluster = try MockKafkaCluster()
        defer { cluster.shutdown() }
        try cluster.createTopic("jobs", partitions: 1)
        try cluster.createTopic("jobs.dead-letters", partitions: 1)
        let events = SampleEvents.make(count: 40)
        _ = try await produce(events, to: "jobs", on: cluster)

        struct Flaky: Error {}
        var configuration = groupConfiguration(cluster, group: "retries")
        configuration.deadLetterTopic = "jobs.dead-letters"
        configuration.retryPolicy = .init(attempts: 3, initialBackoff: .milliseconds(20), maximumBackoff: .milliseconds(50))
        // Events 3, 13, 23, 33 fail twice and then succeed; 7, 17, 27, 37 always fail.
        let calls = CallLog()
        let statistics = try await withWorkflowEventConsumer(configuration: configuration) { consumer in
            try await consumer.consumeEvents(topics: ["jobs"], timeout: .seconds(2)) { event in
                let sequence = Int(event.metadata["sequence"]!)!
                let attempt = calls.record(sequence)
                if sequence % 10 == 3 && attempt < 3 { throw Flaky() }
                if sequence % 10 == 7 { throw Flaky() }
            }
            return await consumer.statistics
        }
        let counts = calls.counts
        for sequence in 0..<40 {
            let expected = (sequence % 10 == 3 || sequence % 10 == 7) ? 3 : 1
            #expect(counts[sequence] == expected, "event \(sequence) handled \(counts[sequence] ?? 0) times")
        }
        #expect(calls.order == calls.order.sorted(), "events out of order")
        #expect(statistics.handlerRetries == 16)
        #expect(statistics.handlerFailures == 4)
        #expect(statistics.deadLettered == 4)
        let letters = try await readRecords(cluster, topic: "jobs.dead-letters", count: 4)
        let lettered = try letters.map { try $0.event() }
        #expect(lettered.map { Int($0.metadata["sequence"]!)! } == [7, 17, 27, 37])
        #expect(letters.allSatisfy { $0.headers.string(WorkflowEventConsumer.DeadLetterHeader.kind) == "handler-failed" })
        #expect(letters.allSatisfy { $0.headers.string(WorkflowEventConsumer.DeadLetterHeader.reason) == "Flaky()" })
        #expect(letters.allSatisfy { $0.headers.string("event-type") != nil }, "the original headers are kept")
        let committed = try await withWorkflowEventConsumer(configuration: configuration) { consumer in
            try await consumer.committed([TopicPartition(topic: "jobs", partition: 0)])
        }
        #expect(committed[TopicPartition(topic: "jobs", partition: 0)] == 40)
        figure(
            "retries",
            ["events": "40", "retried": "\(statistics.handlerRetries)", "dead-lettered": "\(statistics.deadLettered)", "committed": "40/40"])
    }
}

/// Handler calls, by event sequence, in call order.
final class CallLog: Sendable {
    private let state = Mutex<(counts: [Int: Int], order: [Int])>(([:], []))

    func record(_ sequence: Int) -> Int {
        state.withLock { state in
            state.counts[sequence, default: 0] += 1
            if state.order.last != sequence { state.order.append(sequence) }
            return state.counts[sequence]!
        }
    }

    var counts: [Int: Int] { state.withLock { $0.counts } }
    var order: [Int] { state.withLock { $0.order } }
}

/// Reads `count` raw records of a topic from the start, without a group.
func readRecords(_ cluster: MockKafkaCluster, topic: String, count: Int) async throws -> [ConsumerRecord] {
    let consumer = try WorkflowEventConsumer(configuration: .init(bootstrapServers: cluster.bootstrapServers))
    try await consumer.subscribe([topic])
    var records: [ConsumerRecord] = []
    let deadline = ContinuousClock.now.advanced(by: .seconds(20))
    while records.count < count && ContinuousClock.now < deadline {
        records += try await consumer.poll(timeout: .milliseconds(500)).values.flatMap { $0 }
    }
    await consumer.close()
    return records.sorted { $0.offset < $1.offset }
}
