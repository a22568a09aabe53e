// BatchProcessing: the guide's "Batch Processing". `batches(maxCount: 100)` delivers up to 100
// validated events at a time (invalid ones are skipped and logged, as in a stream); a batch
// is stored once the loop asks for the next one, and committed here after it is processed,
// so a crash redelivers at most the batch in hand.
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
        properties: setting.properties)
    var total = 0
    var batches = 0
    for try await batch in consumer.batches(topics: ["workflow-events"], maxCount: 100, maxWait: .milliseconds(200)) {
        processBatch(batch.map(\.event))
        try await consumer.commit()  // after the batch is processed: it includes the batch in hand
        total += batch.count
        batches += 1
        if total >= setting.sampleEvents { break }
    }
    await consumer.close()
    print("Processed \(total) events in \(batches) batches of at most 100.")
}

await runExample("BatchProcessing", sampleEvents: 350, batchProcessing)
