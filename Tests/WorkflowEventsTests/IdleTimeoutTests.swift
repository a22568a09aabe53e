import Foundation
import Synchronization
import TestSupport
import Testing
import WorkflowEvents
import WorkflowEventsTesting

/// The idle timeouts end a reader only once it has read everything its partitions held:
/// a gap between events longer than the timeout while events wait is not idleness. Here with
/// librdkafka's own watermarks; the in-memory tests show the rest on a virtual clock.
@Suite("Idle timeouts count only once caught up")
struct IdleTimeoutTests {
    /// A topic of one partition holding `count` events, each in a message set of its own, so
    /// that the mock cluster answers each fetch with one event.
    func fixtureOfSingleMessageSets(count: Int) async throws -> (cluster: MockKafkaCluster, topic: String, events: [WorkflowEvent]) {
        let fixture = try await makeFixture(partitions: 1)
        let events = SampleEvents.make(count: count)
        let producer = try WorkflowEventProducer(bootstrapServers: fixture.cluster.bootstrapServers)
        for event in events { _ = try await producer.send(event, to: fixture.topic) }
        await producer.close()
        return (fixture.cluster, fixture.topic, events)
    }

    @Test("consumeEvents reads on through gaps longer than its timeout while events wait, then ends once idle")
    func gapsWhileBehind() async throws {
        let fixture = try await fixtureOfSingleMessageSets(count: 6)
        defer { fixture.cluster.shutdown() }
        let consumer = try WorkflowEventConsumer(configuration: groupConfiguration(fixture.cluster, group: "idle-behind"))
        // Every answer takes 400 ms, and a fetch brings one event: gaps of twice the timeout.
        try fixture.cluster.setRoundTripTime(.milliseconds(400), broker: 1)
        var seen: [UUID] = []
        let handled = try await consumer.consumeEvents(topics: [fixture.topic], timeout: .milliseconds(200)) { event in
            seen.append(event.eventID)
        }
        await consumer.close()
        #expect(handled == 6, "handled \(handled) of 6 events: the timeout ended the call while events waited")
        #expect(seen == fixture.events.map(\.eventID))
    }

}
