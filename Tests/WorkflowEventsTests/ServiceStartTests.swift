import Foundation
import InMemoryLogging
import Logging
import ServiceLifecycle
import Synchronization
import TestSupport
import Testing
import WorkflowEvents
import WorkflowEventsService
import WorkflowEventsTesting

/// A service started while the embedded cluster's brokers are down, through the public API.
@Suite("Service: started before Kafka")
struct ServiceStartTests {
    @Test(
        "a service started while every broker is down stays up, not ready; once they are up it becomes ready, consumes everything, and commits it at shutdown"
    )
    func startsBeforeKafka() async throws {
        let fixture = try await makeFixture(partitions: 3, events: 90)
        defer { fixture.cluster.shutdown() }
        try fixture.cluster.setBrokerDown(1)
        var configuration = groupConfiguration(fixture.cluster, group: "started-before-kafka")
        configuration.connectionTimeout = .seconds(1)
        let (logger, logs) = recordingLogger()
        let handled = Mutex<Set<UUID>>([])
        let service = try WorkflowEventService(configuration: configuration, topics: [fixture.topic], logger: logger) { event in
            handled.withLock { _ = $0.insert(event.eventID) }
        }
        let group = ServiceGroup(services: [service], gracefulShutdownSignals: [], logger: logger)
        let running = Task { try await group.run() }
        // Down for a while: the service keeps trying, and says so.
        try await waitUntil("a warning that no bootstrap server answers", timeout: .seconds(30)) {
            logs.entries.contains { "\($0.message)".hasPrefix("no bootstrap server answers") }
        }
        let waiting = await service.consumer.health
        #expect(!waiting.isReady && !waiting.isClosed, "\(waiting)")
        let returned = ContinuousClock.now
        try fixture.cluster.setBrokerUp(1)
        let saw: () async -> String = {
            "\(handled.withLock { $0.count }) handled; \(await service.consumer.health); \(lastLines(logs, 20))"
        }
        try await waitUntil("every event handled", timeout: .seconds(60), saw: saw) { handled.withLock { $0.count } == 90 }
        print("FIGURE service started before Kafka | every event handled \(ContinuousClock.now - returned) after the broker came up")
        #expect(await service.consumer.health.isReady)
        await group.triggerGracefulShutdown()
        try await running.value
        let closed = try #require(logs.entries.first { "\($0.message)" == "consumer closed" })
        let committed = try await withWorkflowEventConsumer(configuration: groupConfiguration(fixture.cluster, group: "started-before-kafka")) {
            try await $0.committed((0..<3).map { TopicPartition(topic: fixture.topic, partition: $0) })
        }
        #expect(committed.values.reduce(0, +) == 90, "committed: \(committed)")
        let said = committed.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", ")
        #expect(closed.metadata["committed"] == .string(said), "the close said \(closed.metadata)")
    }
}
