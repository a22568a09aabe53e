import Testing
import WorkflowEvents
import WorkflowEventsTesting

/// What the producer refuses before anything is sent: no broker is needed.
@Suite("Producer: refused before sending")
struct ProducerValidationTests {
    @Test("an event with no JSON form is refused before sending, naming the field")
    func unencodable() async throws {
        // Nothing answers there: the refusal comes before any connection.
        let producer = try WorkflowEventProducer(bootstrapServers: "127.0.0.1:1")
        var event = SampleEvents.make(count: 1)[0]
        event.payload.data["ratio"] = .double(.nan)
        do {
            _ = try await producer.send(event, to: "workflow-events")
            Issue.record("NaN was sent")
        } catch let error as WorkflowEventsError {
            #expect(error.code == .invalidEvent)
            #expect(error.message.contains("payload.data.ratio"), "the error says: \(error)")
        }
        await producer.close()
    }
}
