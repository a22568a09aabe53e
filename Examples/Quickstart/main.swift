// Quickstart: the guide's "Basic Usage". A consumer in group "workflow-processor" calls a
// function for each event of "workflow-events" and returns once no event has come for
// `consumerTimeout` (1 s, counted from the group's first assignment).
//
//   swift run Quickstart [--bootstrap-servers localhost:9092]
import ExampleSupport
import WorkflowEvents

nonisolated func processEvent(_ event: WorkflowEvent) {
    print("Received event: \(event.eventType) from \(event.source)")
    print("Workflow: \(event.workflowID), Run: \(event.workflowRunID ?? "-")")
    print("Payload: \(event.payload.data)")
}

nonisolated func quickstart(_ setting: ExampleSetting) async throws {
    let consumer = try WorkflowEventConsumer(
        bootstrapServers: setting.bootstrapServers, groupID: "workflow-processor", properties: setting.properties)
    let handled = try await consumer.consumeEvents(topics: ["workflow-events"], timeout: .seconds(5)) { event in
        processEvent(event)
    }
    await consumer.close()  // commits what was handled and leaves the group
    print("Handled \(handled) events.")
}

await runExample("Quickstart", quickstart)
