// Replay: choosing what to read. A manual assignment of one partition (no group
// rebalancing), a seek to the beginning and to the end, and the offsets of the messages
// written since a time ("replay the last hour"): where `seek(_:to:)` with a date starts.
// Look-ups by time need a real broker: the embedded cluster answers them with the end.
//
//   swift run Replay [--bootstrap-servers localhost:9092]
import ExampleSupport
import Foundation
import WorkflowEvents

nonisolated func replay(_ setting: ExampleSetting) async throws {
    try await withWorkflowEventConsumer(bootstrapServers: setting.bootstrapServers, properties: setting.properties) { consumer in
        let partition = TopicPartition(topic: "workflow-events", partition: 0)
        try await consumer.assign([partition: 0])
        print("Assigned: \(await consumer.assignment.sorted())")
        var read = 0
        for try await message in consumer.messages(topics: ["workflow-events"]) {
            read += 1
            if read == 3 {
                print("Read offsets 0 to \(message.offset) of \(partition)")
                break
            }
        }
        try await consumer.seekToBeginning([partition])
        print("After seekToBeginning: position \(try await consumer.position(partition))")
        try await consumer.seekToEnd([partition])
        let end = try await consumer.position(partition)
        print("After seekToEnd: position \(end)")
        // Each partition's first message written in the last hour (its end when none is).
        let hourAgo = Date().addingTimeInterval(-3600)
        let offsets = try await consumer.offsets(for: hourAgo, in: [partition])
        print("First offset written in the last hour: \(offsets[partition]!) (of \(end))")
        if setting.isEmbedded {
            // librdkafka's mock cluster answers every look-up by time with "none".
            print("(the embedded cluster does not look offsets up by time: it answers with the end)")
        }
        try await consumer.seek([partition], to: hourAgo)
        print("After seek to an hour ago: position \(try await consumer.position(partition))")
        try await consumer.unsubscribe()
        print("Unsubscribed: \(await consumer.assignment.count) partitions")
    }
}

await runExample("Replay", replay)
