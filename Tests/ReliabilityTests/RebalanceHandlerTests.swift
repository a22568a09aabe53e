import Foundation
import Synchronization
import TestSupport
import Testing
import WorkflowEvents
import WorkflowEventsTesting

/// What a revocation handler did: the offsets it committed, or the error the commit threw.
private enum HandlerCommit: Sendable {
    case committed([TopicPartition: Int64])
    case refused(any Error)
}

private final class Log<Element: Sendable>: Sendable {
    private let entries = Mutex<[Element]>([])
    func append(_ element: Element) { entries.withLock { $0.append(element) } }
    var all: [Element] { entries.withLock { $0 } }
}

/// Polls until a batch holds records of every partition in `partitions`.
private func pollBatch(_ consumer: WorkflowEventConsumer, covering partitions: Int) async throws -> [TopicPartition: [ConsumerRecord]] {
    var batch: [TopicPartition: [ConsumerRecord]] = [:]
    let deadline = ContinuousClock.now.advanced(by: .seconds(30))
    while ContinuousClock.now < deadline {
        for (partition, records) in try await consumer.poll(timeout: .milliseconds(500)) {
            batch[partition, default: []] += records
        }
        if batch.count == partitions { return batch }
    }
    throw TimedOut(description: "no batch with records of \(partitions) partitions within 30 s")
}

@Suite("Reliability: rebalance handlers", .serialized)
struct RebalanceHandlerTests {
    enum Assignment: String, CaseIterable, Sendable {
        case eager, cooperativeSticky
        var strategy: String { self == .eager ? "range" : "cooperative-sticky" }
    }

    @Test(
        "a revocation handler commits what a poll loop processed of its half-done batch; the next owner starts right after it",
        arguments: Assignment.allCases)
    func handlerCommitsHalfDoneBatch(assignment: Assignment) async throws {
        let cluster = try MockKafkaCluster()
        defer { cluster.shutdown() }
        let topic = "half-done"
        try cluster.createTopic(topic, partitions: 2)
        _ = try await produce(SampleEvents.make(count: 80, workflows: 16), to: topic, on: cluster)
        try await letFollowersSyncFirst(cluster)
        var configuration = groupConfiguration(cluster, group: "half-done-\(assignment)", autoCommit: false)
        configuration.properties["partition.assignment.strategy"] = assignment.strategy
        configuration.maxPollRecords = 500
        let first = try WorkflowEventConsumer(configuration: configuration)
        let processed = Mutex<[TopicPartition: Int64]>([:])
        let commits = Log<HandlerCommit>()
        let revokedPartitions = Log<TopicPartition>()
        first.onPartitionsRevoked { revoked in
            guard !revoked.partitions.isEmpty else { return }
            for partition in revoked.partitions { revokedPartitions.append(partition) }
            let done = processed.withLock { $0 }.filter { revoked.partitions.contains($0.key) }
            do {
                try await revoked.commit(done)
                commits.append(.committed(done))
            } catch {
                commits.append(.refused(error))
            }
        }
        try await first.subscribe([topic])
        let batch = try await pollBatch(first, covering: 2)
        // Half of each partition's records are processed; the rest waits, as in a long batch.
        for (partition, records) in batch {
            for record in records.prefix(records.count / 2) {
                _ = try record.event()
                processed.withLock { $0[partition] = record.offset + 1 }
            }
        }
        // The same assignment strategy (the mock aborts on a group whose members differ).
        var joining = groupConfiguration(cluster, group: "half-done-\(assignment)")
        joining.properties["partition.assignment.strategy"] = assignment.strategy
        let second = try await JoiningMember(joining, topic: topic)
        try await waitUntil("the revocation handler ran", timeout: .seconds(20)) { !commits.all.isEmpty }
        let moved = await second.consumer.assignment
        let done = processed.withLock { $0 }
        let firstOffsets = second.firstOffsets
        await second.stop()
        await first.close()

        #expect(!moved.isEmpty)
        #expect(moved.isSubset(of: Set(revokedPartitions.all)), "moved \(moved), revoked \(revokedPartitions.all)")
        // Exact when the broker accepted the handler's commit; the refusal (a broker that
        // refuses commits while the group rebalances) reaches the handler as an error, and the
        // next owner then starts at the last commit (none: the partition's start).
        let refused = commits.all.contains { if case .refused = $0 { true } else { false } }
        for partition in moved {
            let start = try #require(firstOffsets[partition])
            if refused {
                #expect(start == 0 || start == done[partition], "\(partition): started at \(start)")
            } else {
                #expect(start == done[partition], "\(partition): processed up to \(done[partition] ?? -1), the next owner started at \(start)")
            }
        }
        for case .refused(let error) in commits.all {
            #expect(error is KafkaError, "a refusal is the broker's error, not swallowed: \(error)")
        }
        figure(
            "revocation handler, poll batch half done (\(assignment))",
            [
                "commit": refused ? "refused by the broker, surfaced to the handler" : "accepted",
                "next owner started exactly after it": refused ? "-" : "yes",
            ])
    }

    @Test("a revocation handler that overruns its time is cancelled, the hand-over goes on, and its late commit is refused")
    func overrunningHandler() async throws {
        let cluster = try MockKafkaCluster()
        defer { cluster.shutdown() }
        let topic = "overrun"
        try cluster.createTopic(topic, partitions: 2)
        _ = try await produce(SampleEvents.make(count: 40, workflows: 8), to: topic, on: cluster)
        try await letFollowersSyncFirst(cluster)
        let configuration = groupConfiguration(cluster, group: "overrun", autoCommit: false)
        let first = try WorkflowEventConsumer(configuration: configuration)
        let late = Log<any Error>()
        first.onPartitionsRevoked(timeout: .milliseconds(300)) { revoked in
            guard !revoked.partitions.isEmpty else { return }
            try? await Task.sleep(for: .seconds(60))  // cancelled at the timeout
            do {
                try await revoked.commit(Dictionary(uniqueKeysWithValues: revoked.partitions.map { ($0, 1) }))
            } catch {
                late.append(error)
            }
        }
        try await first.subscribe([topic])
        _ = try await pollBatch(first, covering: 2)
        let started = ContinuousClock.now
        let second = try await JoiningMember(groupConfiguration(cluster, group: "overrun"), topic: topic)
        let joined = ContinuousClock.now - started
        try await waitUntil("the late commit was tried", timeout: .seconds(10)) { !late.all.isEmpty }
        await second.stop()
        await first.close()
        let error = try #require(late.all.first as? WorkflowEventsError)
        #expect(error.code == .partitionNotAssigned)
        #expect("\(error)".contains("handed over"))
        #expect(joined < .seconds(30))
    }

    @Test("the close runs the revocation handler, and its commit lands")
    func closeRunsHandler() async throws {
        let cluster = try MockKafkaCluster()
        defer { cluster.shutdown() }
        let topic = "close-handler"
        try cluster.createTopic(topic, partitions: 1)
        _ = try await produce(SampleEvents.make(count: 20), to: topic, on: cluster)
        let configuration = groupConfiguration(cluster, group: "close-handler", autoCommit: false)
        let consumer = try WorkflowEventConsumer(configuration: configuration)
        let commits = Log<HandlerCommit>()
        consumer.onPartitionsRevoked { revoked in
            do {
                try await revoked.commit(Dictionary(uniqueKeysWithValues: revoked.partitions.map { ($0, 7) }))
                commits.append(.committed([:]))
            } catch {
                commits.append(.refused(error))
            }
        }
        try await consumer.subscribe([topic])
        _ = try await pollBatch(consumer, covering: 1)
        await consumer.close()
        let partition = TopicPartition(topic: topic, partition: 0)
        let committed = try await withWorkflowEventConsumer(configuration: configuration) { next in
            try await next.subscribe([topic])
            return try await next.committed([partition])[partition]
        }
        #expect(commits.all.count == 1)
        if case .refused(let error) = commits.all.first { Issue.record("the close's commit was refused: \(error)") }
        #expect(committed == 7)
    }

    @Test("an assignment handler chooses where each partition starts")
    func assignmentHandlerStarts() async throws {
        let cluster = try MockKafkaCluster()
        defer { cluster.shutdown() }
        let topic = "start-at"
        try cluster.createTopic(topic, partitions: 1)
        _ = try await produce(SampleEvents.make(count: 20), to: topic, on: cluster)
        let consumer = try WorkflowEventConsumer(configuration: groupConfiguration(cluster, group: "start-at"))
        let refused = Log<any Error>()
        consumer.onPartitionsAssigned { assigned in
            for partition in assigned.partitions { try assigned.start(partition, at: 7) }
            do {
                try assigned.start(TopicPartition(topic: "elsewhere", partition: 3), at: 1)
            } catch {
                refused.append(error)
            }
        }
        let messages = try await collect(consumer.messages(topics: [topic]), count: 3)
        await consumer.close()
        #expect(messages.map(\.offset) == [7, 8, 9])
        let error = try #require(refused.all.first as? WorkflowEventsError)
        #expect(error.code == .partitionNotAssigned)
        #expect("\(error)".contains("elsewhere[3]"))
    }
}
