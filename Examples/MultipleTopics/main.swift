// MultipleTopics: the guide's "Multiple Topics" and "Custom Timeout". One consumer reads
// three topics; `messages` tells each event's topic, and `idleTimeout` ends the loop once no
// event has come for 3 seconds.
//
//   swift run MultipleTopics [--bootstrap-servers localhost:9092]
import ExampleSupport
import WorkflowEvents

let topics = ["workflow-events", "workflow-alerts", "workflow-metrics"]

nonisolated func multipleTopics(_ setting: ExampleSetting) async throws {
    try await withWorkflowEventConsumer(
        bootstrapServers: setting.bootstrapServers, groupID: "workflow-processor", properties: setting.properties
    ) { consumer in
        var perTopic: [String: Int] = [:]
        for try await message in consumer.messages(topics: topics, idleTimeout: .seconds(3)) {
            perTopic[message.topic, default: 0] += 1
            print("\(message.topic): \(message.event.eventType) of \(message.event.workflowID)")
        }
        for topic in topics { print("Read \(perTopic[topic, default: 0]) events from \(topic)") }
    }
}

await runExample(
    "MultipleTopics", topics: ["workflow-events": 3, "workflow-alerts": 1, "workflow-metrics": 1], sampleEvents: 10,
    multipleTopics)
