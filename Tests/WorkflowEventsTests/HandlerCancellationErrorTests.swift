import Foundation
import Synchronization
import TestSupport
import Testing
import WorkflowEvents
import WorkflowEventsTesting

/// A handler that throws `CancellationError` while its own task is not cancelled (a child
/// task or a timeout helper inside it was cancelled, an HTTP client's request was cancelled)
/// has failed like any other handler: only the reading task's own cancellation means "not
/// finished".
@Suite("A CancellationError from a handler whose task is not cancelled is a handler error")
struct HandlerCancellationErrorTests {
    static let count = 30

    /// Throws `CancellationError` on every 7th call: 4 of 30.
    final class Thrower: Sendable {
        private let calls = Mutex(0)
        func call() throws {
            let call = calls.withLock { calls in
                calls += 1
                return calls
            }
            if call % 7 == 0 { throw CancellationError() }
        }
        var value: Int { calls.withLock { $0 } }
    }

    /// The group's lag once the consumer is gone: 0 when every event was stored and committed.
    func lag(_ fixture: Fixture, group: String) async throws -> Int64 {
        try await withWorkflowEventConsumer(configuration: groupConfiguration(fixture.cluster, group: group)) {
            try await $0.lag(topics: [fixture.topic])
        }.reduce(0) { $0 + $1.lag }
    }

    @Test("consumeEvents: counted as a failure, the next events handled, the consumer left open, every offset committed")
    func consumeEvents() async throws {
        let fixture = try await makeFixture(partitions: 1, events: Self.count)
        defer { fixture.cluster.shutdown() }
        let thrower = Thrower()
        let consumer = try WorkflowEventConsumer(configuration: groupConfiguration(fixture.cluster, group: "cancellation-error"))
        let handled = try await consumer.consumeEvents(topics: [fixture.topic], timeout: .seconds(4)) { _ in try thrower.call() }
        let statistics = await consumer.statistics
        let closedByHandler = await consumer.isClosed
        await consumer.close()
        #expect(
            handled == Self.count && thrower.value == Self.count,
            "handled \(handled), the handler was called \(thrower.value) times, of \(Self.count)")
        #expect(statistics.handlerFailures == 4, "\(statistics)")
        #expect(!closedByHandler, "the handler's CancellationError closed the consumer")
        #expect(try await lag(fixture, group: "cancellation-error") == 0)
    }

    @Test("serve: counted as a failure and retried under the policy, and serving goes on")
    func serve() async throws {
        let fixture = try await makeFixture(partitions: 1, events: Self.count)
        defer { fixture.cluster.shutdown() }
        var configuration = groupConfiguration(fixture.cluster, group: "cancellation-error-serve")
        configuration.retryPolicy = .init(attempts: 2, initialBackoff: .milliseconds(1))
        let consumer = try WorkflowEventConsumer(configuration: configuration)
        let thrower = Thrower()
        let seen = Mutex(Set<UUID>())
        let handled = try await consumer.serve(topics: [fixture.topic]) { event in
            let distinct = seen.withLock { seen in
                seen.insert(event.eventID)
                return seen.count
            }
            if distinct == Self.count { consumer.stopServing() }
            try thrower.call()
        }
        let statistics = await consumer.statistics
        let closedByHandler = await consumer.isClosed
        await consumer.close()
        #expect(handled == Self.count, "served \(handled) of \(Self.count); the handler was called \(thrower.value) times")
        // Each CancellationError was retried once (a second throw on the retry is possible only
        // when the retry is itself a 7th call).
        #expect(statistics.handlerRetries >= 4, "\(statistics)")
        #expect(!closedByHandler, "the handler's CancellationError closed the consumer")
        #expect(try await lag(fixture, group: "cancellation-error-serve") == 0)
    }

    @Test("process: counted as a failure, its key goes on, and the partition's commit passes it")
    func process() async throws {
        let fixture = try await makeFixture(partitions: 1, events: Self.count)
        defer { fixture.cluster.shutdown() }
        let consumer = try WorkflowEventConsumer(configuration: groupConfiguration(fixture.cluster, group: "cancellation-error-process"))
        let thrower = Thrower()
        let log = HandlingLog()
        try await processUntil(consumer, topic: fixture.topic, count: Self.count, maxConcurrency: 4, log: log) { _ in
            try thrower.call()
        }
        let statistics = await consumer.statistics
        #expect(log.total == Self.count, "handled \(log.total) of \(Self.count)")
        #expect(statistics.handlerFailures == 4, "\(statistics)")
        #expect(try await lag(fixture, group: "cancellation-error-process") == 0)
    }
}
