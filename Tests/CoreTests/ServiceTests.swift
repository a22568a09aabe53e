import Foundation
import InMemoryLogging
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

    func quietLogger() -> Logger {
        var logger = Logger(label: "service-test")
        logger.logLevel = .critical
        return logger
    }

    /// A service over a consumer on `clock`, logging to `logger`, that signals once it has
    /// handled `count` events.
    func startService(
        _ consumer: WorkflowEventConsumer, topic: String, maxConcurrency: Int?, until count: Int, _ handled: Handled
    ) -> (ServiceGroup, AsyncStream<Void>) {
        var quiet = Logger(label: "service-test")
        quiet.logLevel = .critical
        let (reached, signal) = AsyncStream<Void>.makeStream()
        let service = WorkflowEventService(consumer: consumer, topics: [topic], maxConcurrency: maxConcurrency) { _ in
            handled.start()
            if handled.finish() == count { signal.yield() }
        }
        return (ServiceGroup(services: [service], gracefulShutdownSignals: [], logger: quiet), reached)
    }

    @Test(
        "a service started while no broker answers stays up, not ready, warns, and consumes everything once one answers",
        arguments: [nil, 4])
    func startsBeforeKafka(maxConcurrency: Int?) async throws {
        let fixture = Fixture(partitions: 3, events: 60)
        fixture.kafka.setUnreachable(true)
        let clock = VirtualClock()
        let (logger, logs) = recordingLogger()
        let (consumer, _) = try fixture.kafka.makeConsumer(fixture.configuration(), logger: logger, clock: clock)
        let handled = Handled()
        let (group, reached) = startService(consumer, topic: fixture.topic, maxConcurrency: maxConcurrency, until: 60, handled)
        let running = Task { try await group.run() }
        // Ten minutes without Kafka, in steps of 30 s: it keeps trying.
        for _ in 0..<20 {
            await clock.waitForSleepers(1)
            clock.advance(by: .seconds(30))
        }
        let waiting = await consumer.health
        #expect(!waiting.isReady && !waiting.isClosed, "health while no broker answers: \(waiting)")
        let warnings = logs.entries.filter { $0.level == .warning && "\($0.message)".hasPrefix("no bootstrap server answers") }
        #expect(warnings.count >= 10, "warnings: \(warnings.map { "\($0.message) \($0.metadata)" })")
        #expect(handled.started == 0)
        fixture.kafka.setUnreachable(false)
        await clock.waitForSleepers(1)
        clock.advance(by: .seconds(30))
        for await _ in reached { break }
        #expect(await consumer.health.isReady)
        #expect(logs.entries.contains { "\($0.message)" == "a bootstrap server answers" })
        await group.triggerGracefulShutdown()
        try await running.value
        #expect(await consumer.isClosed)
        #expect(fixture.committed.values.reduce(0, +) == 60, "committed: \(fixture.committed)")
        fixture.expectNoMessageLeaked()
    }

    @Test("with clusterWaitLimit, a service that cannot reach the cluster fails with one sentence saying for how long", arguments: [nil, 4])
    func clusterWaitLimit(maxConcurrency: Int?) async throws {
        let fixture = Fixture(partitions: 1, events: 1)
        fixture.kafka.setUnreachable(true)
        let clock = VirtualClock()
        var configuration = fixture.configuration()
        configuration.clusterWaitLimit = .seconds(60)
        let (consumer, _) = try fixture.kafka.makeConsumer(configuration, logger: quietLogger(), clock: clock)
        let service = WorkflowEventService(consumer: consumer, topics: [fixture.topic], maxConcurrency: maxConcurrency) { _ in }
        let running = Task { try await service.run() }
        // Attempts at 0, 1, 3, 7, 15 and 31 s fail; the one at 60 s fails past the limit.
        for backoff in [1, 2, 4, 8, 16, 29] {
            await clock.waitForSleepers(1)
            clock.advance(by: .seconds(backoff))
        }
        do {
            try await running.value
            Issue.record("the service ran on past clusterWaitLimit")
        } catch let error as KafkaError {
            #expect(
                error.message.hasPrefix(
                    "no bootstrap server of 'in-memory:9092' answered within 60.0 seconds (7 attempts, clusterWaitLimit 60.0 seconds)"),
                "\(error.message)")
        }
        #expect(await consumer.isClosed)
    }

    @Test("graceful shutdown while the service waits for the cluster ends it at once, without error", arguments: [nil, 4])
    func shutdownWhileWaiting(maxConcurrency: Int?) async throws {
        let fixture = Fixture(partitions: 1, events: 1)
        fixture.kafka.setUnreachable(true)
        let clock = VirtualClock()
        let (consumer, _) = try fixture.kafka.makeConsumer(fixture.configuration(), logger: quietLogger(), clock: clock)
        let handled = Handled()
        let (group, _) = startService(consumer, topic: fixture.topic, maxConcurrency: maxConcurrency, until: 1, handled)
        let running = Task { try await group.run() }
        await clock.waitForSleepers(1)
        // The wait ends on the stop, with no time passing.
        await group.triggerGracefulShutdown()
        try await running.value
        #expect(await consumer.isClosed)
        #expect(handled.started == 0)
    }
}
