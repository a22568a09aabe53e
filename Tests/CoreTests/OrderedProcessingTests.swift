import Foundation
import Synchronization
import Testing
import WorkflowEventsTesting

@testable import WorkflowEvents

/// `process` at scale on the in-memory client: order per workflow, concurrency, bounded memory.
@Suite("Ordered processing at scale, on the in-memory client", .timeLimit(.minutes(1)))
struct OrderedProcessingTests {
    /// What the handlers saw: per workflow the steps in handling order, and the most
    /// handlers that ran at once.
    final class HandlingLog: Sendable {
        private let state = Mutex<(steps: [String: [Int]], running: Int, peak: Int, total: Int)>(([:], 0, 0, 0))

        func begin() {
            state.withLock { state in
                state.running += 1
                state.peak = max(state.peak, state.running)
            }
        }

        /// Returns the number of events handled so far.
        func end(_ event: WorkflowEvent) -> Int {
            state.withLock { state in
                state.running -= 1
                state.steps[event.workflowID, default: []].append(event.metadata["step"].flatMap { Int($0) } ?? -1)
                state.total += 1
                return state.total
            }
        }

        var steps: [String: [Int]] { state.withLock { $0.steps } }
        var peak: Int { state.withLock { $0.peak } }
        var total: Int { state.withLock { $0.total } }
    }

    /// `workflows` workflows of `steps` events each, step by step, each workflow's events in
    /// one partition (as a producer keying by workflow places them).
    static func fixture(partitions: Int, workflows: Int, steps: Int, group: String = "ordered") -> Fixture {
        let fixture = Fixture(partitions: partitions, events: 0, group: group)
        let templates = SampleEvents.make(count: workflows * steps, workflows: workflows)
        for step in 0..<steps {
            for workflow in 0..<workflows {
                var event = templates[step * workflows + workflow]
                event.workflowID = "workflow-\(workflow)"
                event.metadata["step"] = String(step)
                fixture.kafka.append(events: [event], to: fixture.partition(Int32(workflow % partitions)))
            }
        }
        return fixture
    }

    /// Runs `process` until `count` events were handled, then cancels it and waits for it.
    func processUntil(
        _ consumer: WorkflowEventConsumer, topic: String, count: Int, maxConcurrency: Int,
        limits: WorkflowEventConsumer.ProcessingLimits = .init(), log: HandlingLog
    ) async throws {
        let (done, signal) = AsyncStream<Void>.makeStream()
        let task = Task {
            try await consumer.process(topics: [topic], maxConcurrency: maxConcurrency, limits: limits) { event in
                log.begin()
                for _ in 0..<3 { await Task.yield() }
                if log.end(event) == count { signal.yield() }
            }
        }
        for await _ in done { break }
        task.cancel()
        try await task.value
    }

    @Test("64 workflows × 50 events, 16 at once: each workflow in order, none twice, none missing, at least 10 handlers together, all committed")
    func orderedConcurrency() async throws {
        let fixture = Self.fixture(partitions: 6, workflows: 64, steps: 50)
        let (consumer, _) = try fixture.consumer()
        let log = HandlingLog()
        try await processUntil(consumer, topic: fixture.topic, count: 64 * 50, maxConcurrency: 16, log: log)
        #expect(log.steps.count == 64)
        for (workflow, seen) in log.steps {
            #expect(seen == Array(0..<50), "\(workflow) handled \(seen.count) events, out of order or repeated")
        }
        #expect(log.total == 64 * 50)
        #expect(log.peak >= 10 && log.peak <= 16, "at most \(log.peak) handlers ran at once")
        await consumer.close()
        #expect(fixture.committed == fixture.endOffsets, "committed \(fixture.committed)")
        fixture.expectNoMessageLeaked()
    }

    @Test("concurrency 1 and 16: the same events, each workflow in order, never more handlers at once than allowed")
    func concurrencyOneAndSixteen() async throws {
        for concurrency in [1, 16] {
            let fixture = Self.fixture(partitions: 6, workflows: 32, steps: 8, group: "concurrency-\(concurrency)")
            let (consumer, _) = try fixture.consumer()
            let log = HandlingLog()
            try await processUntil(consumer, topic: fixture.topic, count: 32 * 8, maxConcurrency: concurrency, log: log)
            #expect(log.total == 32 * 8)
            #expect(log.peak <= concurrency, "\(log.peak) handlers at once, at concurrency \(concurrency)")
            for (workflow, seen) in log.steps {
                #expect(seen == Array(0..<8), "\(workflow) at concurrency \(concurrency): \(seen)")
            }
            await consumer.close()
            #expect(fixture.committed == fixture.endOffsets, "concurrency \(concurrency): committed \(fixture.committed)")
        }
    }

    @Test("with 20,000 events waiting, the events taken but not finished stay within the limit")
    func boundedInFlight() async throws {
        let fixture = Self.fixture(partitions: 64, workflows: 500, steps: 40)
        var configuration = fixture.configuration()
        configuration.fetchBatchSize = 100
        let (consumer, client) = try fixture.kafka.makeConsumer(configuration)
        let limits = WorkflowEventConsumer.ProcessingLimits(maxBufferedEvents: 1_000, maxBufferedEventsPerPartition: 100)
        let log = HandlingLog()
        // The first handlers wait until every partition is paused: meanwhile events pile up
        // to the limit, which must stop the fetching.
        let gate = Shared(false)
        let (done, signal) = AsyncStream<Void>.makeStream()
        let task = Task {
            try await consumer.process(topics: [fixture.topic], maxConcurrency: 8, limits: limits) { event in
                log.begin()
                while !gate.withLock({ $0 }) { await Task.yield() }
                if log.end(event) == 5_000 { signal.yield() }
            }
        }
        while client.paused.count < 64 { await Task.yield() }
        gate.withLock { $0 = true }
        for await _ in done { break }
        task.cancel()
        try await task.value
        let peak = await consumer.statistics.peakEventsInProcessing
        // The limit, plus the few fetch batches on their way when the pause takes effect.
        // The limit was reached (the peak is reported by the loop now and then, not at once).
        #expect(peak >= 1_000, "held at most \(peak) events at once")
        #expect(peak <= 1_000 + 4 * 100, "held \(peak) events at once")
        // Each workflow's steps so far are an unbroken prefix, in order.
        for (workflow, steps) in log.steps {
            #expect(steps == Array(0..<steps.count), "\(workflow): \(steps.prefix(20))")
        }
        await consumer.close()
        fixture.expectNoMessageLeaked()
    }
}
