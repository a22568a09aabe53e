// SeekAndPosition: the guide's "Seek to Specific Offset" and "Get Current Position".
// Without a group the consumer reads every partition; `position` is the next offset it will
// deliver, and `seek` makes a given offset the next one read.
//
//   swift run SeekAndPosition [--bootstrap-servers localhost:9092]
import ExampleSupport
import WorkflowEvents

nonisolated func seekAndPosition(_ setting: ExampleSetting) async throws {
    try await withWorkflowEventConsumer(bootstrapServers: setting.bootstrapServers, properties: setting.properties) { consumer in
        try await consumer.subscribe(["workflow-events"])
        let partition = TopicPartition(topic: "workflow-events", partition: 0)
        let start = try await consumer.position(partition)
        print("Current position: \(start)")

        let target = start + 2
        try await consumer.seek(partition, to: target)
        print("After seek: position \(try await consumer.position(partition))")

        // The idle timeout ends the loop when partition 0 holds nothing after the target.
        for try await message in consumer.messages(topics: ["workflow-events"], idleTimeout: .seconds(5))
        where message.partition == 0 {
            // An event in hand at a `break` counts as not processed: it is read again.
            if message.offset > target { break }
            print("Next event of \(partition) is at offset \(message.offset): \(message.event.eventType)")
        }
        print("Position now: \(try await consumer.position(partition))")
    }
}

// One partition on the embedded cluster, so that partition 0 holds all 30 sample events.
await runExample("SeekAndPosition", topics: ["workflow-events": 1], seekAndPosition)
