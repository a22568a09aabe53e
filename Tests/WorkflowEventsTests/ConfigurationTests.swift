import Testing
import WorkflowEvents

/// The consumer's settings, checked before anything connects.
@Suite("Consumer settings")
struct ConfigurationTests {
    @Test("the defaults are the seed guide's")
    func defaults() {
        let configuration = WorkflowEventConsumer.Configuration()
        #expect(configuration.bootstrapServers == "localhost:9092")
        #expect(configuration.groupID == nil)
        #expect(configuration.autoOffsetReset == .earliest)
        #expect(configuration.enableAutoCommit == true)
        #expect(configuration.consumerTimeout == .milliseconds(1000))
        #expect(configuration.maxPollRecords == nil)
    }

    @Test("bad settings are rejected with the property named")
    func invalidConfiguration() throws {
        #expect(throws: WorkflowEventsError.self) {
            try WorkflowEventConsumer(configuration: .init(properties: ["no.such.property": "1"]))
        }
        do {
            _ = try WorkflowEventConsumer(configuration: .init(properties: ["session.timeout.ms": "many"]))
            Issue.record("session.timeout.ms=many was accepted")
        } catch let error as WorkflowEventsError {
            #expect(error.code == .invalidConfiguration)
            #expect(error.message.contains("session.timeout.ms"), "the error says: \(error)")
        }
    }
}
