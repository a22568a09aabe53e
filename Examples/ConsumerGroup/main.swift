// ConsumerGroup: the guide's "Consumer Groups". Three consumers of one group run in a task
// group and share the partitions of a six-partition topic; each prints the partitions it
// owns and how many events it read. Each stops after 3 seconds without a new event.
//
//   swift run ConsumerGroup [--bootstrap-servers localhost:9092]
import ExampleSupport
import WorkflowEvents

nonisolated func consumerGroup(_ setting: ExampleSetting) async throws {
    let counts = try await withThrowingTaskGroup(of: Int.self) { group in
        for member in 1...3 {
            group.addTask {
                try await withWorkflowEventConsumer(bootstrapServers: setting.bootstrapServers, groupID: "workflow-processor") {
                    consumer in
                    var read = 0
                    for try await _ in consumer.events(topics: ["workflow-events"], idleTimeout: .seconds(3)) {
                        read += 1
                    }
                    let owned = await consumer.assignment.map(\.partition).sorted()
                    print("member \(member) owns partitions \(owned) and read \(read) events")
                    return read
                }
            }
        }
        return try await group.reduce(into: [Int]()) { $0.append($1) }
    }
    print("The group read \(counts.reduce(0, +)) events with \(counts.count) members.")
}

await runExample("ConsumerGroup", topics: ["workflow-events": 6], sampleEvents: 60, consumerGroup)
