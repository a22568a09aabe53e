// ManualCommit: the guide's "Manual Commit". With auto-commit off, nothing is committed
// until `commit()`; a new member of the group then starts exactly after what was committed.
//
//   swift run ManualCommit [--bootstrap-servers localhost:9092]
import ExampleSupport
import WorkflowEvents

nonisolated func processEvent(_ event: WorkflowEvent) {
    print("Processed \(event.eventType) of \(event.workflowID)")
}

nonisolated func manualCommit(_ setting: ExampleSetting) async throws {
    let group = "manual-commit"
    let consumer = try WorkflowEventConsumer(
        bootstrapServers: setting.bootstrapServers, groupID: group, enableAutoCommit: false, properties: setting.properties)
    try await consumer.subscribe(["workflow-events"])
    var processed = 0
    while processed < setting.sampleEvents {
        let messages = try await consumer.poll(timeout: .seconds(1))
        for (_, records) in messages {
            for record in records {
                processEvent(try record.event())
                processed += 1
            }
        }
    }
    // Commit after processing: the offsets of everything polled so far.
    try await consumer.commit()
    let partitions = (0..<3).map { TopicPartition(topic: "workflow-events", partition: Int32($0)) }
    let committed = try await consumer.committed(partitions)
    await consumer.close()
    for partition in partitions {
        print("Committed \(partition): next offset \(committed[partition].map(String.init) ?? "none")")
    }
    print("Processed \(processed) events and committed them.")
}

await runExample("ManualCommit", manualCommit)
