import Foundation
import Synchronization
import TestSupport
import Testing
import WorkflowEvents
import WorkflowEventsTesting

@Suite("Reliability: rolling group")
struct RollingGroupTests {
    @Test("members leave (cancelled) and join (new tasks) every second while 100,000 events are consumed: nothing lost, no partition owned twice")
    func rollingGroup() async throws {
        let cluster = try MockKafkaCluster()
        defer { cluster.shutdown() }
        let topic = "rolling"
        try cluster.createTopic(topic, partitions: 64)
        let events = SampleEvents.make(count: 100_000, workflows: 256)
        let reports = try await produce(events, to: topic, on: cluster)
        try await letFollowersSyncFirst(cluster)
        let place = Dictionary(uniqueKeysWithValues: zip(events.map(\.eventID), reports))
        var configuration = groupConfiguration(cluster, group: "rolling")
        configuration.properties["session.timeout.ms"] = "3000"
        configuration.properties["heartbeat.interval.ms"] = "300"
        configuration.autoCommitInterval = .milliseconds(500)
        let seen = Seen()

        /// Per member, in order of start, the offsets it delivered per partition.
        let delivered = Deliveries()
        func startMember() throws -> (WorkflowEventConsumer, Task<Void, any Error>) {
            let consumer = try WorkflowEventConsumer(configuration: configuration)
            let index = delivered.state.withLock { list in
                list.append([:])
                return list.count - 1
            }
            let task = Task {
                for try await message in consumer.messages(topics: [topic]) {
                    seen.add(message.event.eventID)
                    delivered.state.withLock { $0[index][message.topicPartition, default: []].append(message.offset) }
                    if seen.total % 64 == 0 { try? await Task.sleep(for: .milliseconds(5)) }
                }
            }
            return (consumer, task)
        }

        var members: [(WorkflowEventConsumer, Task<Void, any Error>)] = []
        for _ in 0..<3 { members.append(try startMember()) }
        let all = Set(events.map(\.eventID))
        var joins = 3
        var leaves = 0
        var overlaps = 0
        var samples = 0
        var generator = SystemRandomNumberGenerator()

        /// Partitions held by two members in two snapshots in a row.
        func overlapping() async -> Int {
            var first: [Set<TopicPartition>] = []
            for (consumer, _) in members { first.append(await consumer.assignment) }
            var second: [Set<TopicPartition>] = []
            for (consumer, _) in members { second.append(await consumer.assignment) }
            var count = 0
            for i in members.indices {
                for j in members.indices where j > i {
                    count += first[i].intersection(first[j]).intersection(second[i]).intersection(second[j]).count
                }
            }
            return count
        }

        // Churn for 15 seconds: every second a member leaves or a new one joins (2 to 4 members).
        for second in 0..<15 {
            let deadline = ContinuousClock.now.advanced(by: .seconds(1))
            while ContinuousClock.now < deadline {
                overlaps += await overlapping()
                samples += 1
                try await Task.sleep(for: .milliseconds(25))
            }
            let leave = members.count >= 4 || (members.count > 2 && (second % 2 == 0) != Bool.random(using: &generator))
            if leave {
                let index = Int.random(in: members.indices, using: &generator)
                let (_, task) = members.remove(at: index)
                task.cancel()
                _ = await task.result
                leaves += 1
            } else {
                members.append(try startMember())
                joins += 1
            }
        }
        /// What the group stands at: the events not seen, by partition, against each member's
        /// assignment and statistics and the group's committed offsets.
        func standing() async -> String {
            var missing: [TopicPartition: [Int64]] = [:]
            for id in all.subtracting(seen.ids) {
                let report = place[id]!
                missing[TopicPartition(topic: report.topic, partition: report.partition), default: []].append(report.offset)
            }
            var lines = ["\(seen.ids.count) of \(all.count) events seen (\(seen.total) deliveries)"]
            let committed =
                (try? await withWorkflowEventConsumer(configuration: .init(bootstrapServers: cluster.bootstrapServers, groupID: "rolling")) {
                    try await $0.committed(Array(missing.keys))
                }) ?? [:]
            for (partition, offsets) in missing.sorted(by: { $0.key.partition < $1.key.partition }) {
                let owners = await members.indices.asyncFilter { await members[$0].0.assignment.contains(partition) }
                lines.append(
                    "\(partition): \(offsets.count) unseen (\(offsetRuns(offsets.sorted()))), committed \(committed[partition].map(String.init) ?? "none"), owned by members \(owners)"
                )
                for (member, partitions) in delivered.state.withLock({ $0 }).enumerated() {
                    if let offsets = partitions[partition] { lines.append("  member #\(member) (by start) delivered \(offsetRuns(offsets))") }
                }
            }
            for (index, (consumer, task)) in members.enumerated() {
                let statistics = await consumer.statistics
                lines.append(
                    "member \(index): \(await consumer.assignment.count) partitions, closed \(await consumer.isClosed), task cancelled \(task.isCancelled), \(statistics)"
                )
            }
            return lines.joined(separator: "\n")
        }
        do {
            try await waitUntil("every event consumed", timeout: .seconds(90)) {
                overlaps += await overlapping()
                samples += 1
                return seen.ids.isSuperset(of: all)
            }
        } catch {
            throw TimedOut(description: "\(error)\n\(await standing())")
        }
        for (_, task) in members { task.cancel() }
        for (_, task) in members { _ = await task.result }

        let lost = all.subtracting(seen.ids).count
        #expect(lost == 0)
        #expect(overlaps == 0, "a partition was owned by two members at once in \(overlaps) samples")
        figure(
            "rolling group",
            [
                "events": "\(events.count)", "joins": "\(joins)", "leaves": "\(leaves)", "lost": "\(lost)",
                "duplicates": "\(seen.total - seen.ids.count)", "ownership samples": "\(samples)", "owned twice": "\(overlaps)",
            ])
    }
}

extension Range where Bound == Int {
    func asyncFilter(_ predicate: (Int) async -> Bool) async -> [Int] {
        var kept: [Int] = []
        for index in self where await predicate(index) { kept.append(index) }
        return kept
    }
}

/// Per member, in order of start, the offsets it delivered per partition.
final class Deliveries: Sendable {
    let state = Mutex<[[TopicPartition: [Int64]]]>([])
}
