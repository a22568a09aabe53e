import Foundation
import Synchronization
import Testing
import WorkflowEventsTesting

@testable import WorkflowEvents

/// Rebalances driven by the in-memory client: what a reader's revocation stores and commits,
/// and the application's handlers.
@Suite("Rebalances, on the in-memory client", .timeLimit(.minutes(1)))
struct RebalanceTests {
    @Test("a revocation commits the reader's finished events of the partition, nothing past one in hand, and delivers no more of it")
    func revocationCommitsFinished() async throws {
        let fixture = Fixture(partitions: 2, events: 100)
        let (consumer, client) = try fixture.consumer()
        let revoked = fixture.partition(0)
        // The revocation runs inside the consumer's next fetch: what was fetched before it
        // is still delivered. The handler marks when it ran, and what had been delivered.
        let delivered = Mutex<[WorkflowEventMessage]>([])
        let atRevocation = Mutex<[WorkflowEventMessage]?>(nil)
        consumer.onPartitionsRevoked { _ in atRevocation.withLock { $0 = delivered.withLock { $0 } } }
        var count = 0
        for try await message in consumer.messages(topics: [fixture.topic]) {
            let revokedAlready = atRevocation.withLock { $0 != nil }
            delivered.withLock { $0.append(message) }
            count += 1
            if count == 20 { client.revoke([revoked]) }
            if revokedAlready && message.partition == 0 {
                Issue.record("partition 0 delivered offset \(message.offset) after its revocation")
            }
            if delivered.withLock({ $0.filter { $0.partition == 1 }.count }) == 50 { break }
        }
        let before = try #require(atRevocation.withLock { $0 }, "the revocation never ran")
        let last = try #require(before.last { $0.partition == 0 }?.offset)
        // The last event of partition 0 delivered was finished (the reader had asked for the
        // next) or still in hand: the commit is after it, or at it; never past it.
        let committed = fixture.kafka.commits.first { $0.offsets[revoked] != nil }?.offsets[revoked]
        #expect(
            committed == last + 1 || committed == last,
            "committed \(String(describing: committed)) for \(revoked); the last of it delivered before the revocation was \(last)")
        await consumer.close()
        fixture.expectNoMessageLeaked()
    }

    @Test("lost partitions commit nothing: another member owns them already")
    func lostPartitionsCommitNothing() async throws {
        let fixture = Fixture(partitions: 2, events: 60)
        let (consumer, client) = try fixture.consumer()
        var count = 0
        for try await _ in consumer.events(topics: [fixture.topic]) {
            count += 1
            if count == 15 { client.revoke([fixture.partition(0)], lost: true) }
            if count == 40 { break }
        }
        #expect(fixture.kafka.commits.allSatisfy { $0.offsets[fixture.partition(0)] == nil }, "commits: \(fixture.kafka.commits.map(\.offsets))")
        // Not even sent: librdkafka 2.0.2 would rejoin only once the broker refused it.
        let sent = client.state.withLock { $0.refusedCommitsOfLostPartitions }
        #expect(sent.isEmpty, "commits of the lost partition sent at its unassignment: \(sent)")
        await consumer.close()
        fixture.expectNoMessageLeaked()
    }

    @Test("a cooperative revocation and assignment of one partition: each event once, in order, on every partition")
    func cooperativeAssignmentKeepsPositions() async throws {
        let fixture = Fixture(partitions: 3, events: 90)
        let (consumer, client) = try fixture.consumer(protocol: .cooperative)
        // Partition 2 goes, then comes back: it starts again at what the revocation
        // committed; the others never stop.
        var seen: [WorkflowEventMessage] = []
        for try await message in consumer.messages(topics: [fixture.topic]) {
            seen.append(message)
            if seen.count == 10 { client.revoke([fixture.partition(2)]) }
            if seen.count == 30 { client.assignMore([fixture.partition(2)]) }
            if seen.count == 90 { break }
        }
        for (partition, offsets) in offsetsByPartition(seen) {
            #expect(offsets == Array(0..<Int64(offsets.count)), "partition \(partition) delivered \(offsets)")
        }
        #expect(offsetsByPartition(seen)[2]?.count == 30)
        await consumer.close()
        fixture.expectNoMessageLeaked()
    }

    @Test("the revocation handler runs before the hand-over, and its commit lands before the partitions go")
    func revocationHandlerCommits() async throws {
        let fixture = Fixture(partitions: 1, events: 30)
        let (consumer, client) = try fixture.consumer(autoCommit: false)
        let delivered = Mutex<[Int64]>([])
        let calls = Mutex<[(partitions: [TopicPartition], assignedThen: Bool, delivered: [Int64])]>([])
        consumer.onPartitionsRevoked { revoked in
            let assigned = client.state.withLock { $0.assigned }.contains(fixture.partition(0))
            calls.withLock { $0.append((revoked.partitions, assigned, delivered.withLock { $0 })) }
            try await revoked.commit()
        }
        // With its only partition revoked, the member owns none: the stream ends when idle.
        for try await message in consumer.messages(topics: [fixture.topic], idleTimeout: .milliseconds(100)) {
            if !calls.withLock({ $0.isEmpty }) { Issue.record("offset \(message.offset) delivered after the revocation") }
            delivered.withLock { $0.append(message.offset) }
            if message.offset == 11 { client.revoke([fixture.partition(0)]) }
        }
        let seen = calls.withLock { $0 }
        #expect(seen.count == 1, "the handler ran \(seen.count) times")
        let call = try #require(seen.first)
        #expect(call.partitions == [fixture.partition(0)])
        #expect(call.assignedThen, "the handler ran after the partition was given up")
        // Auto-commit off: only the handler's commit, after the last event finished, or at
        // the one in hand.
        let last = try #require(call.delivered.last)
        let committed = fixture.committed[fixture.partition(0)]
        #expect(committed == last + 1 || committed == last, "committed \(String(describing: committed)); \(last) was the last delivered")
        await consumer.close()
        fixture.expectNoMessageLeaked()
    }

    @Test("the close runs the revocation handler, and its commit lands before the member leaves")
    func closeRunsRevocationHandler() async throws {
        let fixture = Fixture(partitions: 1, events: 20)
        let (consumer, client) = try fixture.consumer(autoCommit: false)
        let outcomes = Mutex<[String]>([])
        consumer.onPartitionsRevoked { revoked in
            do {
                try await revoked.commit(Dictionary(uniqueKeysWithValues: revoked.partitions.map { ($0, 7) }))
                outcomes.withLock { $0.append("committed") }
            } catch {
                outcomes.withLock { $0.append("refused: \(error)") }
            }
        }
        try await consumer.subscribe([fixture.topic])
        while try await consumer.poll(timeout: .milliseconds(100)).isEmpty {}
        await consumer.close()
        #expect(client.isClosed)
        #expect(outcomes.withLock { $0 } == ["committed"])
        #expect(fixture.committed == [fixture.partition(0): 7], "committed \(fixture.committed)")
        fixture.expectNoMessageLeaked()
    }

    @Test("the assignment handler chooses where a partition starts")
    func assignmentHandlerChoosesStart() async throws {
        let fixture = Fixture(partitions: 2, events: 40)
        let (consumer, _) = try fixture.consumer()
        consumer.onPartitionsAssigned { assigned in
            try assigned.start(fixture.partition(0), at: 15)
        }
        var seen: [WorkflowEventMessage] = []
        for try await message in consumer.messages(topics: [fixture.topic]) {
            seen.append(message)
            if seen.count == 25 { break }
        }
        let byPartition = offsetsByPartition(seen)
        #expect(byPartition[0] == Array(15..<20), "partition 0 delivered \(byPartition[0] ?? [])")
        #expect(byPartition[1] == Array(0..<20), "partition 1 delivered \(byPartition[1] ?? [])")
        await consumer.close()
    }

    @Test("rebalance events tell assignments and revocations in order")
    func rebalanceEvents() async throws {
        let fixture = Fixture(partitions: 2, events: 20)
        let (consumer, client) = try fixture.consumer()
        let events = consumer.rebalanceEvents()
        var count = 0
        for try await _ in consumer.events(topics: [fixture.topic], idleTimeout: .milliseconds(100)) {
            count += 1
            if count == 5 { client.revoke([fixture.partition(1)]) }
        }
        await consumer.close()
        var kinds: [String] = []
        for await event in events { kinds.append("\(event.kind) \(event.partitions.map(\.partition))") }
        // Eager: the whole assignment goes, and what is kept comes back; the close revokes it.
        #expect(kinds == ["assigned [0, 1]", "revoked [0, 1]", "assigned [0]", "revoked [0]"], "saw \(kinds)")
    }
}
