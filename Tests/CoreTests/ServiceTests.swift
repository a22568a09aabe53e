import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import Testing
import WorkflowEventsService
import WorkflowEventsTesting

@testable import WorkflowEvents

/// `WorkflowEventService` in a `ServiceGroup`, on the in-memory client: graceful shutdown.
@Suite("The service's graceful shutdown, on the in-memory client", .timeLimit(.minutes(1)))
struct ServiceTests {
    /// Handlers started and finished.
    final class Handled: Sendable {
        private let state = Mutex((started: 0, finished: 0))
        func start() { state.withLock { $0.started += 1 } }
        /// Returns how many have finished.
        func finish() -> Int {
            state.withLock { state in
                state.finished += 1
                return state.finished
            }
        }
        var started: Int { state.withLock { $0.started } }
        var finished: Int { state.withLock { $0.finished } }
    }

    /// Runs a service in a `ServiceGroup` and shuts the group down gracefully once `count`
    /// events were handled.
    func runUntilShutdown(
        _ consumer: WorkflowEventConsumer, topic: String, maxConcurrency: Int?, after count: Int, _ handled: Handled
    ) async throws {
        var logger = Logger(label: "service-test")
        logger.logLevel = .critical
        let (reached, signal) = AsyncStream<Void>.makeStream()
        let service = WorkflowEventService(consumer: consumer, topics: [topic], maxConcurrency: maxConcurrency) { _ in
            handled.start()
            for _ in 0..<3 { await Task.yield() }
            if handled.finish() == count { signal.yield() }
        }
        let group = ServiceGroup(services: [service], gracefulShutdownSignals: [], logger: logger)
        let running = Task { try await group.run() }
        for await _ in reached { break }
        await group.triggerGracefulShutdown()
        try await running.value
    }

    @Test("graceful shutdown finishes the event in hand, commits exactly what was handled, closes and returns")
    func gracefulShutdown() async throws {
        let fixture = Fixture(partitions: 3, events: 200)
        let (consumer, client) = try fixture.consumer()
        let handled = Handled()
        try await runUntilShutdown(consumer, topic: fixture.topic, maxConcurrency: nil, after: 20, handled)
        #expect(await consumer.isClosed)
        #expect(client.isClosed)
        #expect(handled.started == handled.finished, "started \(handled.started), finished \(handled.finished): an event in hand was abandoned")
        #expect(handled.finished < 200)
        let committed = fixture.committed.values.reduce(0, +)
        #expect(committed == Int64(handled.finished), "committed \(committed), handled \(handled.finished)")
        fixture.expectNoMessageLeaked()
    }

    @Test("a concurrent service drains its handlers on graceful shutdown and commits no further than they finished")
    func concurrentGracefulShutdown() async throws {
        let fixture = Fixture(partitions: 3, events: 300)
        let (consumer, client) = try fixture.consumer()
        let handled = Handled()
        try await runUntilShutdown(consumer, topic: fixture.topic, maxConcurrency: 4, after: 20, handled)
        #expect(await consumer.isClosed)
        #expect(client.isClosed)
        #expect(handled.started == handled.finished, "started \(handled.started), finished \(handled.finished): a handler in flight was abandoned")
        let committed = fixture.committed.values.reduce(0, +)
        #expect(committed > 0 && committed <= Int64(handled.finished), "committed \(committed), finished \(handled.finished)")
        fixture.expectNoMessageLeaked()
    }
}
