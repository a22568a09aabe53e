// ConsumerGroup: the guide's "Consumer Groups". Three consumers of one group run in a task
// group and share the partitions of a six-partition topic. Once the group has read every
// sample event, the task group is cancelled: each member commits, leaves the group, and
// prints the partitions it owned and how many events it read.
//
//   swift run ConsumerGroup [--bootstrap-servers localhost:9092]
import ExampleSupport
import Synchronization
import WorkflowEvents

/// Events read by the whole group.
final class GroupTotal: Sendable {
    private let count = Atomic<Int>(0)
    func add() -> Int { count.add(1, ordering: .relaxed).newValue }
}

nonisolated func consumerGroup(_ setting: ExampleSetting) async throws {
    let total = GroupTotal()
    let goal = setting.sampleEvents
    let counts = try await withThrowingTaskGroup(of: Int.self) { group in
        for member in 1...3 {
            group.addTask {
                try await withWorkflowEventConsumer(
                    bootstrapServers: setting.bootstrapServers, groupID: "workflow-processor", properties: setting.properties
                ) { consumer in
                    var read = 0
                    var owned: [Int32] = []
                    for try await _ in consumer.events(topics: ["workflow-events"]) {
                        read += 1
                        owned = await consumer.assignment.map(\.partition).sorted()
                        if total.add() >= goal { break }
                    }
                    print("member \(member) owns partitions \(owned) and read \(read) events")
                    return read
                }
            }
        }
        // The first member to see the group's last event ends; the others are cancelled.
        var counts = [try await group.next()!]
        group.cancelAll()
        while let count = try await group.next() { counts.append(count) }
        return counts
    }
    print("The group read \(counts.reduce(0, +)) events with \(counts.count) members.")
}

await runExample("ConsumerGroup", topics: ["workflow-events": 6], sampleEvents: 60, consumerGroup)
