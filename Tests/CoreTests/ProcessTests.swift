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
        let statistics = await consumer.statistics
        #expect(statistics.handlerFailures == 4, "\(statistics)")
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
                    try await untilCancelled()
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

    @Test("a partition process paused at its limit is resumed after an eager rebalance: every event handled")
    func pausedAtLimitAcrossRebalance() async throws {
        let fixture = Fixture(partitions: 2, events: 0)
        let partition = fixture.partition(0)
        fixture.kafka.append(events: SampleEvents.make(count: 100, workflows: 100), to: partition)
        let clock = VirtualClock()
        let (consumer, client) = try fixture.consumer(clock: clock)
        let gate = HandlerGate()
        let (started, startedSignal) = AsyncStream<Void>.makeStream()
        let handled = Shared<Set<UUID>>([])
        let (done, doneSignal) = AsyncStream<Void>.makeStream()
        // The rebalance waits for the handlers as long as the drain, then goes on without them.
        var limits = WorkflowEventConsumer.ProcessingLimits(
            maxBufferedEvents: 1_000, maxBufferedEventsPerPartition: 5, drainTimeout: .milliseconds(20))
        limits.revocationReplyGrace = .zero
        let processing = Task {
            try await consumer.process(topics: [fixture.topic], maxConcurrency: 2, limits: limits) { event in
                startedSignal.yield()
                await gate.wait()
                if handled.withLock({ $0.insert(event.eventID).inserted && $0.count == 100 }) { doneSignal.yield() }
            }
        }
        var starts = started.makeAsyncIterator()
        for _ in 0..<2 { await starts.next() }
        // Both handlers hold their events: the partition fills to its limit and is paused.
        while !client.paused.contains(partition) { await Task.yield() }
        // The group takes every partition back and gives them again, while the handlers wait.
        let generation = consumer.assignmentGeneration
        client.revoke(fixture.allPartitions)
        client.assignMore(fixture.allPartitions)
        while consumer.assignmentGeneration < generation + 2 { await Task.yield() }
        await gate.open()
        for await _ in done { break }
        processing.cancel()
        try await processing.value
        #expect(handled.withLock { $0.count } == 100)
        await consumer.close()
        #expect(fixture.committed[partition] == 100, "committed \(fixture.committed)")
        fixture.expectNoMessageLeaked()
    }
}

/// A gate that handlers wait at until it opens.
actor HandlerGate {
    private var isOpen = false
    private var waiting: [CheckedContinuation<Void, Never>] = []

    func wait() async {
        if isOpen { return }
        await withCheckedContinuation { waiting.append($0) }
    }

    func open() {
        isOpen = true
        for continuation in waiting { continuation.resume() }
        waiting = []
    }
}

@Suite("process when librdkafka's wait for a revocation runs out, on the in-memory client", .timeLimit(.minutes(1)))
struct LateRevocationTests {
    @Test(
        "a revocation the rebalance stopped waiting for does not touch the partition's next assignment: a partition paused at its limit reads on, every event handled"
    )
    func lateRevocationLeavesNextAssignment() async throws {
        let fixture = Fixture(partitions: 1, events: 40)
        // On a virtual clock: process answers the revocation at its drain deadline only when the
        // clock moves, which it does not while the rebalance waits: the answer is always late.
        let (consumer, client) = try fixture.consumer(protocol: .cooperative, clock: VirtualClock())
        let partition = fixture.partition(0)
        let placement = fixture.placement
        var limits = WorkflowEventConsumer.ProcessingLimits(maxBufferedEventsPerPartition: 5, drainTimeout: .milliseconds(20))
        // The rebalance waits for process only as long as the drain: process, whose handlers
        // are held, answers at its drain deadline, after the rebalance went on.
        limits.revocationReplyGrace = .zero
        let gate = HandlerGate()
        let started = Shared(0)
        let handled = Shared<Set<Int64>>([])
        let assignments = Shared(0)
        let (twoStarted, twoStartedContinuation) = AsyncStream<Void>.makeStream()
        let (reassigned, reassignedContinuation) = AsyncStream<Void>.makeStream()
        let (allHandled, allHandledContinuation) = AsyncStream<Void>.makeStream()
        consumer.onPartitionsAssigned { _ in
            if assignments.withLock({ count in
                count += 1
                return count
            }) == 2 {
                reassignedContinuation.yield()
            }
        }
        let processing = Task {
            try await consumer.process(topics: [fixture.topic], maxConcurrency: 2, limits: limits) { event in
                let number = started.withLock { count in
                    count += 1
                    return count
                }
                if number <= 2 {
                    if number == 2 { twoStartedContinuation.yield() }
                    await gate.wait()
                }
                let offset = placement[event.eventID]!.1
                if handled.withLock({ handled in
                    handled.insert(offset)
                    return handled.count
                }) == 40 {
                    allHandledContinuation.yield()
                }
            }
        }
        for await _ in twoStarted { break }
        // The group takes the partition and gives it back at once, while two handlers of
        // it are held and it is paused at its limit.
        client.revoke([partition])
        client.assignMore([partition])
        for await _ in reassigned { break }
        await gate.open()
        for await _ in allHandled { break }
        processing.cancel()
        try await processing.value
        #expect(fixture.committed == [partition: 40], "committed \(fixture.committed); stores \(client.stores.map(\.1))")
        fixture.expectNoMessageLeaked()
    }

    @Test(
        "a revocation the rebalance stopped waiting for forgets nothing of the partition's next assignment: nothing stored past a handler still running"
    )
    func lateRevocationKeepsNextAssignmentsOffsets() async throws {
        let fixture = Fixture(partitions: 1, events: 40)
        let (consumer, client) = try fixture.consumer(protocol: .cooperative, clock: VirtualClock())
        let partition = fixture.partition(0)
        let placement = fixture.placement
        var limits = WorkflowEventConsumer.ProcessingLimits(drainTimeout: .milliseconds(20))
        limits.revocationReplyGrace = .zero
        let firstGate = HandlerGate()
        let heldGate = HandlerGate()
        let held: Int64 = 3
        let started = Shared(0)
        let handled = Shared<Set<Int64>>([])
        let assignments = Shared(0)
        let (twoStarted, twoStartedContinuation) = AsyncStream<Void>.makeStream()
        let (reassigned, reassignedContinuation) = AsyncStream<Void>.makeStream()
        let (othersHandled, othersHandledContinuation) = AsyncStream<Void>.makeStream()
        let (allHandled, allHandledContinuation) = AsyncStream<Void>.makeStream()
        consumer.onPartitionsAssigned { _ in
            if assignments.withLock({ count in
                count += 1
                return count
            }) == 2 {
                reassignedContinuation.yield()
            }
        }
        let processing = Task {
            // Each event a key of its own: every handler runs apart from the others.
            try await consumer.process(
                topics: [fixture.topic], maxConcurrency: 64, orderingKey: .custom { $0.eventID.uuidString }, limits: limits
            ) { event in
                let offset = placement[event.eventID]!.1
                let number = started.withLock { count in
                    count += 1
                    return count
                }
                if number <= 2 {
                    if number == 2 { twoStartedContinuation.yield() }
                    await firstGate.wait()
                } else if offset == held && assignments.withLock({ $0 }) == 2 {
                    await heldGate.wait()
                }
                let (count, others) = handled.withLock { handled in
                    let isNew = handled.insert(offset).inserted
                    return (isNew ? handled.count : 0, isNew && offset != held ? handled.subtracting([held]).count : 0)
                }
                if others == 39 { othersHandledContinuation.yield() }
                if count == 40 { allHandledContinuation.yield() }
            }
        }
        for await _ in twoStarted { break }
        client.revoke([partition])
        client.assignMore([partition])
        for await _ in reassigned { break }
        await firstGate.open()
        for await _ in othersHandled { break }
        // Every event but the held one was handled: nothing past it may be stored.
        let stored = client.stored[partition]
        #expect(stored.map { $0 <= held } ?? true, "stored \(String(describing: stored)) while offset \(held) is still being handled")
        await heldGate.open()
        for await _ in allHandled { break }
        processing.cancel()
        try await processing.value
        #expect(fixture.committed == [partition: 40], "committed \(fixture.committed)")
        fixture.expectNoMessageLeaked()
    }
}
