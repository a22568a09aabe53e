// RebalanceHandlers: code that runs before partitions move. A member processes a polled
// batch slowly; when a second member joins, its revocation handler commits how far it got,
// so that the new owner starts right after it instead of at the last commit. A broker may
// refuse commits while the group rebalances (the embedded cluster does): the handler then
// sees the error, and the new owner starts at the last commit.
//
//   swift run RebalanceHandlers [--bootstrap-servers localhost:9092]
import ExampleSupport
import Synchronization
import WorkflowEvents

nonisolated func rebalanceHandlers(_ setting: ExampleSetting) async throws {
    var configuration = WorkflowEventConsumer.Configuration(
        bootstrapServers: setting.bootstrapServers, groupID: "rebalance-handlers", enableAutoCommit: false,
        properties: setting.properties)
    if setting.isEmbedded {
        // The embedded cluster holds a rebalance up to the members' session timeout.
        configuration.properties = ["session.timeout.ms": "6000", "heartbeat.interval.ms": "500"]
    }
    let first = try WorkflowEventConsumer(configuration: configuration)
    // Next offsets of what the loop below has processed, per partition.
    let processed = Mutex<[TopicPartition: Int64]>([:])
    first.onPartitionsRevoked(timeout: .seconds(10)) { revoked in
        let done = processed.withLock { $0 }.filter { revoked.partitions.contains($0.key) }
        do {
            try await revoked.commit(done)
            print("revoked \(revoked.partitions.sorted()): committed \(done.sorted { $0.key < $1.key }.map { "\($0.key) at \($0.value)" })")
        } catch {
            print("revoked \(revoked.partitions.sorted()): the broker refused the commit (\(error))")
        }
    }
    first.onPartitionsAssigned { assigned in
        print("assigned \(assigned.partitions.sorted())")
    }
    try await first.subscribe(["workflow-events"])
    var batch: [TopicPartition: [ConsumerRecord]] = [:]
    while batch.isEmpty { batch = try await first.poll(timeout: .seconds(1)) }
    // Half of the batch is processed; then a second member joins while the rest waits.
    for (partition, records) in batch {
        for record in records.prefix(records.count / 2) {
            _ = try record.event()
            processed.withLock { $0[partition] = record.offset + 1 }
        }
    }
    configuration.enableAutoCommit = true
    let second = try WorkflowEventConsumer(configuration: configuration)
    var starts: [TopicPartition: Int64] = [:]
    // Until every partition it owns has given an event, or none came for 5 s (a partition
    // may hold no sample event).
    for try await message in second.messages(topics: ["workflow-events"], idleTimeout: .seconds(5)) {
        if starts[message.topicPartition] == nil { starts[message.topicPartition] = message.offset }
        if starts.count == (await second.assignment).count { break }
    }
    print("the second member owns \(await second.assignment.sorted())")
    for (partition, offset) in starts.sorted(by: { $0.key < $1.key }) {
        print("the second member starts \(partition) at \(offset)")
    }
    await second.close()
    await first.close()
}

await runExample("RebalanceHandlers", rebalanceHandlers)
