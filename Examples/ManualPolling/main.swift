// ManualPolling: the guide's "Manual Polling". Subscribe, `poll` records grouped by
// partition, validate each with `record.event()`, then commit and close. The first polls
// come back empty while the group assigns partitions, so the loop polls until it has the
// sample events.
//
//   swift run ManualPolling [--bootstrap-servers localhost:9092]
import ExampleSupport
import WorkflowEvents

nonisolated func manualPolling(_ setting: ExampleSetting) async throws {
    let consumer = try WorkflowEventConsumer(
        bootstrapServers: setting.bootstrapServers, groupID: "workflow-processor", properties: setting.properties)
    try await consumer.subscribe(["workflow-events"])
    var received = 0
    var emptyPolls = 0
    while received < setting.sampleEvents, emptyPolls < 30 {
        let messages = try await consumer.poll(timeout: .milliseconds(1000))
        if messages.isEmpty { emptyPolls += 1 }
        for (partition, records) in messages.sorted(by: { $0.key < $1.key }) {
            for record in records {
                do {
                    let event = try record.event()
                    print("Received event: \(event.eventID) from \(partition) at offset \(record.offset)")
                    received += 1
                } catch {
                    print("Skipped the record at \(partition) offset \(record.offset): \(error)")
                }
            }
        }
    }
    try await consumer.commit()
    await consumer.close()
    print("Polled \(received) events, committed, closed.")
}

await runExample("ManualPolling", manualPolling)
