import Foundation
import Synchronization
import Testing
import WorkflowEventsTesting

@testable import WorkflowEvents

/// `process` on the in-memory client: order per key, commits, drains and revocations.
@Suite("process, on the in-memory client", .timeLimit(.minutes(1)))
struct ProcessTests {
    /// Runs `process` in a task until `done` says so, then cancels it and waits for it.
    func runProcess(
        _ consumer: WorkflowEventConsumer, topic: String, maxConcurrency: Int = 4,
        limits: WorkflowEventConsumer.ProcessingLimits = .init(),
        until done: @escaping @Sendable () -> Bool,
        handler: @escaping @Sendable (WorkflowEvent) async throws -> Void
    ) async throws {
        let (signal, continuation) = AsyncStream<Void>.makeStream()
        let task = Task {
            try await consumer.process(topics: [topic], maxConcurrency: maxConcurrency, limits: limits) { event in
                try await handler(event)
                if done() { continuation.yield() }
            }
        }
        for await _ in signal { break }
        task.cancel()
        try await task.value
    }

    @Test("every event is handled once, each workflow's in offset order, and the finished run is committed")
    func everyEventOnceInOrder() async throws {
        let fixture = Fixture(partitions: 3, events: 300, byWorkflow: true)
        let (consumer, _) = try fixture.consumer()
        let handled = Mutex<[UUID]>([])
        let perWorkflow = Mutex<[String: [Int64]]>([:])
        let placement = fixture.placement
        try await runProcess(
            consumer, topic: fixture.topic, until: { handled.withLock { $0.count } >= 300 },
            handler: { event in
                await Task.yield()
                perWorkflow.withLock { $0[event.workflowID, default: []].append(placement[event.eventID]!.1) }
                handled.withLock { $0.append(event.eventID) }
            })
        let ids = handled.withLock { $0 }
        #expect(ids.count == 300 && Set(ids).count == 300, "\(ids.count) handled, \(Set(ids).count) distinct")
        // A workflow's events are in one partition.
        for (workflow, offsets) in perWorkflow.withLock({ $0 }) {
            #expect(offsets == offsets.sorted(), "workflow \(workflow) handled out of order: offsets \(offsets)")
        }
        #expect(fixture.committed == fixture.endOffsets.filter { $0.value > 0 }, "committed \(fixture.committed)")
        fixture.expectNoMessageLeaked()
    }

    @Test("a handler error is logged and skipped under the policy: the commit moves past it")
    func handlerErrorSkipped() async throws {
        struct Failure: Error {}
        let fixture = Fixture(partitions: 1, events: 50)
        let (consumer, _) = try fixture.consumer()
        let count = Mutex(0)
        try await runProcess(
            consumer, topic: fixture.topic, until: { count.withLock { $0 } >= 49 },
            handler: { event in
                let number = count.withLock { count in
                    count += 1
                    return count
                }
                if number == 10 { throw Failure() }
            })
        #expect(fixture.committed == [fixture.partition(0): 50], "committed \(fixture.committed)")
        let statistics = await consumer.statistics
        #expect(statistics.handlerFailures == 1, "handler failures: \(statistics.handlerFailures)")
    }

    @Test("a CancellationError from a handler whose task is not cancelled is a handler error: the commit moves past it")
    func cancellationErrorFromHandler() async throws {
        let fixture = Fixture(partitions: 1, events: 30)
        let (consumer, _) = try fixture.consumer()
        let count = Mutex(0)
        try await runProcess(
            consumer, topic: fixture.topic, until: { count.withLock { $0 } >= 26 },
            handler: { _ in
                let number = count.withLock { count in
                    count += 1
                    return count
                }
                if number % 7 == 0 { throw CancellationError() }
            })
        #expect(fixture.committed == [fixture.partition(0): 30], "committed \(fixture.committed)")
    }

    @Test("a handler cancelled by the drain deadline has not finished: the commit stops at its event")
    func drainDeadlineCancels() async throws {
        let fixture = Fixture(partitions: 1, events: 20)
        let (consumer, client) = try fixture.consumer()
        let placement = fixture.placement
        let started = Mutex(0)
        let finished = Mutex<Set<Int64>>([])
        let (stuck, stuckContinuation) = AsyncStream<Void>.makeStream()
        let task = Task {
            try await consumer.process(
                topics: [fixture.topic], maxConcurrency: 1, limits: .init(drainTimeout: .milliseconds(50))
            ) { event in
                let number = started.withLock { count in
                    count += 1
                    return count
                }
                if number == 8 {
                    stuckContinuation.yield()
                    // Never returns until cancelled: the drain deadline cancels it.
                    try await Task.sleep(for: .seconds(3600))
                }
                finished.withLock { _ = $0.insert(placement[event.eventID]!.1) }
            }
        }
        for await _ in stuck { break }
        task.cancel()
        try await task.value
        // One worker takes several workflows' events in turn: the commit is the first
        // offset whose handler did not finish (the cancelled one, or one never started).
        let done = finished.withLock { $0 }
        let firstUnfinished = (0..<20).first { !done.contains(Int64($0)) }.map(Int64.init)
        #expect(done.count == 7)
        #expect(
            fixture.committed[fixture.partition(0)] == firstUnfinished,
            "committed \(fixture.committed), finished \(done.sorted()); stores \(client.stores.map(\.1))")
        fixture.expectNoMessageLeaked()
    }

    @Test("a revocation lets handlers in flight finish, commits the finished run, and starts nothing more of the partition")
    func revocationDuringProcess() async throws {
        let fixture = Fixture(partitions: 2, events: 200)
        let (consumer, client) = try fixture.consumer()
        let revoked = fixture.partition(0)
        let placement = fixture.placement
        let handled = Mutex<[Int32: Set<Int64>]>([:])
        let revocationRan = Mutex(false)
        consumer.onPartitionsRevoked { _ in revocationRan.withLock { $0 = true } }
        let total = Mutex(0)
        try await runProcess(
            consumer, topic: fixture.topic, until: { handled.withLock { $0[1]?.count ?? 0 } == 100 },
            handler: { event in
                let (partition, offset) = placement[event.eventID]!
                if partition == revoked && revocationRan.withLock({ $0 }) {
                    Issue.record("a handler of \(revoked) started after its revocation (offset \(offset))")
                }
                let number = total.withLock { count in
                    count += 1
                    return count
                }
                if number == 30 { client.revoke([revoked]) }
                await Task.yield()
                handled.withLock { _ = $0[partition.partition, default: []].insert(offset) }
            })
        #expect(revocationRan.withLock { $0 }, "the revocation never ran")
        let done = handled.withLock { $0[0] ?? [] }
        let firstUnfinished = (0..<100).map(Int64.init).first { !done.contains($0) }
        let committedAtRevocation = fixture.kafka.commits.first { $0.offsets[revoked] != nil }?.offsets[revoked]
        // Handlers in flight finished before the hand-over: the commit is the first offset
        // never handled.
        #expect(
            committedAtRevocation == firstUnfinished,
            "committed \(String(describing: committedAtRevocation)) for \(revoked); handled \(done.sorted())")
        #expect(fixture.committed[fixture.partition(1)] == 100, "committed \(fixture.committed)")
        fixture.expectNoMessageLeaked()
    }
}
