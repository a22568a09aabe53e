// ScopedConsumer: the guide's "Using Context Manager". `withWorkflowEventConsumer` hands a
// consumer to a body and closes it however the body ends: returning, throwing, or being
// cancelled. Here the body throws after a few events, and the consumer is closed anyway.
//
//   swift run ScopedConsumer [--bootstrap-servers localhost:9092]
import ExampleSupport
import WorkflowEvents

struct EnoughForNow: Error {}

nonisolated func scoped(_ setting: ExampleSetting) async throws {
    var kept: WorkflowEventConsumer?
    do {
        try await withWorkflowEventConsumer(
            bootstrapServers: setting.bootstrapServers, groupID: "workflow-processor", properties: setting.properties
        ) { consumer in
            kept = consumer
            var seen = 0
            try await consumer.consumeEvents(topics: ["workflow-events"], timeout: .seconds(5)) { event in
                print("Event: \(event.eventID)")
                seen += 1
            }
            print("The scope read \(seen) events; now it throws.")
            throw EnoughForNow()
        }
    } catch is EnoughForNow {
        // The error left the scope, and the scope closed the consumer on its way out.
    }
    let closed = await kept?.isClosed ?? false
    print("Consumer closed after the scope: \(closed)")
}

await runExample("ScopedConsumer", scoped)
