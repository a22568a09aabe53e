// BatchProcessing: the guide's "Batch Processing". `maxPollRecords: 100` caps each poll at
// 100 records; each batch is validated, processed as a whole, then committed, so a crash
// redelivers at most the batch in hand.
//
//   swift run BatchProcessing [--bootstrap-servers localhost:9092]
import ExampleSupport
import WorkflowEvents

nonisolated func processBatch(_ events: [WorkflowEvent]) {
    let failures = events.filter { $0.eventType == .workflowFailed || $0.eventType == .stepFailed }.count
    print("Batch of \(events.count) events, \(failures) failures")
}

nonisolated func batchProcessing(_ setting: ExampleSetting) async throws {
    let consumer = try WorkflowEventConsumer(
        bootstrapServers: setting.bootstrapServers, groupID: "workflow-batches", enableAutoCommit: false,
        maxPollRecords: 100)
    try await consumer.subscribe(["workflow-events"])
    var total = 0
    var batches = 0
    while total < setting.sampleEvents {
        let messages = try await consumer.poll(timeout: .seconds(1))
        if messages.isEmpty { continue }
        var events: [WorkflowEvent] = []
        for (_, records) in messages {
            for record in records {
                events.append(try record.event())
            }
        }
        processBatch(events)
        try await consumer.commit()  // after the batch is processed
        total += events.count
        batches += 1
    }
    await consumer.close()
    print("Processed \(total) events in \(batches) batches of at most 100.")
}

await runExample("BatchProcessing", sampleEvents: 350, batchProcessing)
