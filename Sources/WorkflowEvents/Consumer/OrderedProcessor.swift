import Dispatch
import DequeModule
import Foundation
import Logging
import CoreMetrics
import Synchronization

extension WorkflowEventConsumer {
    /// What decides which events must be handled one at a time, in offset order.
    public struct OrderingKey: Sendable {
        let key: @Sendable (WorkflowEvent) -> String

        /// One workflow's events in order (the default).
        public static let workflowID = OrderingKey { $0.workflowID }
        /// One run's events in order; events without a run are ordered by workflow.
        public static let workflowRunID = OrderingKey { $0.workflowRunID ?? "workflow:" + $0.workflowID }

        /// Any key: events with equal keys are handled one at a time, in offset order.
        /// Events with equal keys must be on one partition for the order to mean anything
        /// (Kafka orders a partition only).
        public static func custom(_ key: @escaping @Sendable (WorkflowEvent) -> String) -> OrderingKey {
            OrderingKey(key: key)
        }
    }

    /// Bounds on the events ``process(topics:maxConcurrency:orderingKey:limits:_:)`` holds.
    public struct ProcessingLimits: Sendable, Hashable {
        /// Events taken but not finished, in all; beyond it every partition is paused.
        public var maxBufferedEvents: Int
        /// Events taken but not finished, per partition; beyond it that partition is paused.
        public var maxBufferedEventsPerPartition: Int
        /// How long cancellation, and the revocation of partitions, wait for handlers in
        /// flight before cancelling them (cancellation) or handing over anyway (revocation).
        public var drainTimeout: Duration

        /// Limits; the defaults hold about 10 MB of events of the contract's size.
        public init(maxBufferedEvents: Int = 10_000, maxBufferedEventsPerPartition: Int = 2_000, drainTimeout: Duration = .seconds(10)) {
            self.maxBufferedEvents = maxBufferedEvents
            self.maxBufferedEventsPerPartition = maxBufferedEventsPerPartition
            self.drainTimeout = drainTimeout
        }
    }

    /// Handles the events of `topics` with up to `maxConcurrency` handlers at once, keeping
    /// each workflow's events in order, until the calling task is cancelled.
    ///
    /// - Events with the same ordering key (`workflowID` by default) are handled one at a
    ///   time, in offset order; events of different keys run concurrently.
    /// - The offset stored for commit never passes an event whose handler has not finished:
    ///   only the unbroken run of finished offsets of a partition is committed, so a crash
    ///   redelivers the unfinished events and loses nothing.
    /// - At most `limits.maxBufferedEvents` events are taken but not finished (and
    ///   `maxBufferedEventsPerPartition` per partition), plus the few fetch batches already
    ///   on their way when a pause takes effect (of `fetchBatchSize` each); beyond that
    ///   the partitions are paused in librdkafka while polling goes on, so the group keeps a
    ///   member whose handlers are merely slow.
    /// - A handler that throws is retried under the configuration's `retryPolicy`, then
    ///   logged, counted, and dead-lettered when there is a `deadLetterTopic`; its key goes
    ///   on with the next event.
    /// - Cancelling the calling task stops taking events, lets handlers in flight finish
    ///   within `limits.drainTimeout` (then cancels them: a handler that ends because it was
    ///   cancelled has not finished, and its event is not stored), commits the finished run,
    ///   leaves the group and closes the consumer.
    /// - What an earlier stream on this consumer fetched and did not finish is handled first;
    ///   `process` refuses to start while another reader reads, or while partitions are
    ///   paused with ``pause(_:)`` (it pauses and resumes partitions by itself).
    /// - Before partitions are revoked, their handlers in flight may finish (within
    ///   `drainTimeout`), their finished run is committed, and their events not yet started
    ///   are dropped for the next owner.
    ///
    /// While `process` runs, the consumer's other ways of reading throw.
    ///
    /// - Throws: the errors the stream would throw (a fatal or authorization `KafkaError`),
    ///   after draining; ``WorkflowEventsError`` for a bad argument.
    public nonisolated func process(
        topics: [String],
        maxConcurrency: Int = 16,
        orderingKey: OrderingKey = .workflowID,
        limits: ProcessingLimits = ProcessingLimits(),
        _ handler: @escaping @Sendable (WorkflowEvent) async throws -> Void
    ) async throws {
        guard maxConcurrency >= 1 else {
            throw WorkflowEventsError(.invalidConfiguration, "maxConcurrency is \(maxConcurrency): it must be at least 1")
        }
        guard limits.maxBufferedEvents >= 1, limits.maxBufferedEventsPerPartition >= 1 else {
            throw WorkflowEventsError(.invalidConfiguration, "processing limits must be at least 1: \(limits)")
        }
        let handedOver = try await beginProcessing(topics)
        let processor = OrderedProcessor(
            consumer: self, maxConcurrency: maxConcurrency, orderingKey: orderingKey, limits: limits, handler: handler)
        let outcome: Result<Void, any Error> = await withTaskCancellationHandler {
            await processor.run(first: handedOver)
        } onCancel: {
            processor.mailbox.post(.stop)
        }
        await endProcessing()
        try outcome.get()
    }

    /// Takes over the reading: what an earlier reader fetched and did not finish is handed to
    /// the processor (returned, in order), the busy reader's keep-alive stops, and its
    /// pause is lifted.
    private func beginProcessing(_ topics: [String]) async throws -> [RDKafkaMessage] {
        try checkOpen("process")
        try beginReadingForProcess()
        do {
            try await subscribe(topics)
            return try await takeOverReading()
        } catch {
            endReadingForProcess()
            throw error
        }
    }

    private func endProcessing() async {
        client.context.state.withLock { $0.revocationHook = nil }
        if configuration.groupID != nil && !configuration.enableAutoCommit && !isClosed {
            do {
                try await client.commit(nil)
            } catch {
                logger.info("the final commit of process failed", metadata: ["error": "\(error)"])
            }
        }
        await close()
        endReadingForProcess()
    }

    func count(_ field: WritableKeyPath<ConsumerStatistics, Int>, _ amount: Int) {
        counters[keyPath: field] += amount
        switch field {
        case \.eventsDelivered:
            metrics.events.increment(by: amount)
            lastEventTime = Date()
        case \.invalidEvents: metrics.invalidEvents.increment(by: amount)
        case \.handlerFailures: metrics.handlerFailures.increment(by: amount)
        default: break
        }
    }

    func notePeakInProcessing(_ count: Int) {
        counters.peakEventsInProcessing = max(counters.peakEventsInProcessing, count)
    }
}

/// How a handler call under a retry policy ended.
enum HandlerOutcome: Sendable {
    case succeeded
    /// Failed on every attempt; `error` is the last one.
    case failed(any Error)
    /// Ended by its task's cancellation (a throw while cancelled, or cancelled between
    /// attempts): the event is not done.
    case abandoned
}

/// Calls `body` until it succeeds, at most `policy.attempts` times, waiting the policy's
/// backoff in between; `onRetry` hears of each failure that is retried.
nonisolated(nonsending) func callWithRetries(
    _ policy: WorkflowEventConsumer.RetryPolicy,
    onRetry: (any Error, Int) async -> Void,
    _ body: () async throws -> Void
) async -> HandlerOutcome {
    var failures = 0
    while true {
        do {
            try await body()
            return .succeeded
        } catch {
            // Ended because its task was cancelled: not finished, so neither retried nor failed.
            if Task.isCancelled || error is CancellationError { return .abandoned }
            failures += 1
            guard failures < policy.attempts else { return .failed(error) }
            await onRetry(error, failures)
            try? await Task.sleep(for: policy.backoff(afterFailure: failures))
            if Task.isCancelled { return .abandoned }
        }
    }
}

// MARK: - The processor

/// Signals to the processing loop, from the fetcher, the handlers, librdkafka's rebalance
/// callback, timers and cancellation.
enum ProcessingSignal: Sendable {
    case fetched([RDKafkaMessage], ack: @Sendable () -> Void)
    case fetchFailed(any Error)
    case finished(id: Int, outcome: HandlerOutcome)
    /// `reply` hands over the offsets to commit before the partitions go.
    case revoke([TopicPartition], lost: Bool, reply: @Sendable ([(TopicPartition, Int64)]) -> Void)
    case revocationDeadline(Int)
    case stop
    case drainDeadline
    case giveUp
    /// The fetcher has ended: no batch will come any more.
    case fetcherEnded
}

/// A queue of signals with one waiting reader, which waits whether or not its task is
/// cancelled (the loop must go on draining after cancellation).
final class Mailbox: Sendable {
    private struct State {
        var signals: Deque<ProcessingSignal> = []
        var waiter: CheckedContinuation<ProcessingSignal, Never>?
    }

    private let state = Mutex(State())

    func post(_ signal: ProcessingSignal) {
        let waiter: CheckedContinuation<ProcessingSignal, Never>? = state.withLock { state in
            if let waiter = state.waiter {
                state.waiter = nil
                return waiter
            }
            state.signals.append(signal)
            return nil
        }
        waiter?.resume(returning: signal)
    }

    func next() async -> ProcessingSignal {
        await withCheckedContinuation { continuation in
            let ready: ProcessingSignal? = state.withLock { state in
                if let signal = state.signals.popFirst() { return signal }
                state.waiter = continuation
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }

    /// Posts `signal` after `delay`, on a task of its own that cancellation of the
    /// caller does not reach.
    func post(_ signal: ProcessingSignal, after delay: Duration) {
        Task.detached { [self] in
            try? await Task.sleep(for: delay)
            post(signal)
        }
    }
}

/// The state of one `process` call. Everything but the mailbox is touched only by the
/// loop in `run()`, on one task.
final class OrderedProcessor: @unchecked Sendable {
    // @unchecked: the mutable state below is confined to the task running `run()`; other
    // tasks reach the processor through `mailbox` only.

    struct WorkItem {
        let id: Int
        let key: String
        let partition: TopicPartition
        let epoch: Int
        let offset: Int64
        let event: WorkflowEvent
        let message: RDKafkaMessage
    }

    /// Offsets of one partition taken and not yet covered by the stored offset.
    struct Progress {
        let epoch: Int
        /// Offsets in the order taken (increasing) and not yet finished in an unbroken run
        /// from the first.
        var offsets: Deque<Int64> = []
        var finished: Set<Int64> = []
        var stored: Int64 = -1
        /// The next offset after the last one taken.
        var next: Int64 = -1
        var inMemory = 0
        var paused = false

        mutating func take(_ offset: Int64) {
            offsets.append(offset)
            next = offset + 1
        }

        mutating func finish(_ offset: Int64) {
            finished.insert(offset)
            while let first = offsets.first, finished.remove(first) != nil { offsets.removeFirst() }
        }

        /// The offset to commit: the first unfinished one, or the next to take.
        var committable: Int64 { offsets.first ?? next }
    }

    struct Revocation {
        let token: Int
        let partitions: Set<TopicPartition>
        let reply: @Sendable ([(TopicPartition, Int64)]) -> Void
    }

    let mailbox = Mailbox()
    private let consumer: WorkflowEventConsumer
    private let client: RDKafkaConsumerClient
    private let logger: Logger
    private let maxConcurrency: Int
    private let orderingKey: WorkflowEventConsumer.OrderingKey
    private let limits: WorkflowEventConsumer.ProcessingLimits
    private let handler: @Sendable (WorkflowEvent) async throws -> Void
    private let retryPolicy: WorkflowEventConsumer.RetryPolicy
    private let deadLettering: Bool

    private var nextID = 0
    private var nextEpoch = 0
    private var progress: [TopicPartition: Progress] = [:]
    private var pending: [String: Deque<WorkItem>] = [:]
    private var ready = Deque<String>()
    private var running: [Int: (item: WorkItem, task: Task<Void, Never>)] = [:]
    private var inMemory = 0
    private var revocations: [Revocation] = []
    private var runningKeys: Set<String> = []
    private var totalFull = false
    /// Partitions paused while the total was full before any of their messages came.
    private var pausedUnseen: Set<TopicPartition> = []
    private var draining = false
    private var failure: (any Error)?
    private var fetcher: Task<Void, Never>?
    private let stopFetching = StopFlag()
    private var delivered = 0

    init(
        consumer: WorkflowEventConsumer, maxConcurrency: Int, orderingKey: WorkflowEventConsumer.OrderingKey,
        limits: WorkflowEventConsumer.ProcessingLimits, handler: @escaping @Sendable (WorkflowEvent) async throws -> Void
    ) {
        self.consumer = consumer
        self.client = consumer.client
        self.logger = consumer.logger
        self.maxConcurrency = maxConcurrency
        self.orderingKey = orderingKey
        self.limits = limits
        self.handler = handler
        self.retryPolicy = consumer.configuration.retryPolicy
        self.deadLettering = consumer.configuration.deadLetterTopic != nil
    }

    /// The loop: takes signals until it has stopped, every handler has ended and the fetcher
    /// has returned. `first` is what an earlier reader fetched: taken before anything else.
    func run(first: [RDKafkaMessage]) async -> Result<Void, any Error> {
        let mailbox = self.mailbox
        let drainTimeout = limits.drainTimeout
        client.context.state.withLock { state in
            state.revocationHook = { [client] partitions, lost in
                let done = DispatchSemaphore(value: 0)
                let offsets = Mutex<[(TopicPartition, Int64)]>([])
                mailbox.post(
                    .revoke(
                        partitions, lost: lost,
                        reply: { entries in
                            offsets.withLock { $0 = entries }
                            done.signal()
                        }))
                // Bounded: the loop replies within the drain timeout. This runs on
                // librdkafka's polling thread, never on Swift's cooperative pool.
                _ = done.wait(timeout: .now() + .milliseconds(Int(drainTimeout.milliseconds) + 2_000))
                client.commitBlocking(offsets.withLock { $0 })
            }
        }
        if !first.isEmpty {
            await ingest(first)
            schedule()
        }
        startFetcher()
        var gaveUp = false
        var fetcherEnded = false
        while !(draining && (running.isEmpty || gaveUp) && fetcherEnded) {
            switch await mailbox.next() {
            case .fetched(let messages, let ack):
                // While draining, a batch still on its way is dropped (read again later).
                await ingest(messages)
                ack()
            case .fetcherEnded:
                fetcherEnded = true
            case .fetchFailed(let error):
                failure = failure ?? error
                beginDraining()
            case .finished(let id, let outcome):
                await finish(id, outcome)
            case .revoke(let partitions, let lost, let reply):
                revoke(partitions, lost: lost, reply: reply)
            case .revocationDeadline(let token):
                completeRevocation(token: token, timedOut: true)
            case .stop:
                beginDraining()
            case .drainDeadline:
                if !running.isEmpty {
                    logger.info(
                        "handlers still running after the drain timeout; cancelling them",
                        metadata: ["count": "\(running.count)"])
                    for (_, entry) in running { entry.task.cancel() }
                    mailbox.post(.giveUp, after: .seconds(1))
                }
            case .giveUp:
                gaveUp = true
            }
            if !draining { schedule() }
            await flushCounters()
        }
        await fetcher?.value
        // What is left was never started, or did not end in time: not stored.
        for (_, queue) in pending {
            var queue = queue
            while let item = queue.popFirst() { item.message.destroy() }
        }
        pending = [:]
        for (_, entry) in running { entry.item.message.destroy() }
        running = [:]
        for revocation in revocations { revocation.reply([]) }
        revocations = []
        await flushCounters()
        if let failure { return .failure(failure) }
        return .success(())
    }

    // MARK: Fetching

    private func startFetcher() {
        let client = self.client
        let mailbox = self.mailbox
        let batchSize = consumer.configuration.fetchBatchSize
        fetcher = Task.detached { [stopFetching] in
            defer { mailbox.post(.fetcherEnded) }
            while !stopFetching.isSet {
                if client.isClosing {
                    mailbox.post(.fetchFailed(WorkflowEventsError(.clientClosed, "the consumer was closed while process(topics:) read from it")))
                    return
                }
                let batch = await client.fetch(timeout: .milliseconds(100), maximum: batchSize)
                if let error = client.takeErrorToThrow() {
                    for message in batch { message.destroy() }
                    mailbox.post(.fetchFailed(error))
                    return
                }
                guard !batch.isEmpty else { continue }
                // Waits until the loop has taken the batch: one batch in hand at a time.
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    mailbox.post(.fetched(batch, ack: { continuation.resume() }))
                }
            }
        }
    }

    private func stopFetcher() {
        stopFetching.set()
        client.wakeUp()
    }

    // MARK: Taking events

    /// Counts not yet added to the consumer's statistics (flushed after each signal).
    private var pendingCounts = (invalid: 0, tombstones: 0, failures: 0)

    private func ingest(_ messages: [RDKafkaMessage]) async {
        let assignment = consumer.configuration.groupID == nil ? nil : client.assignment
        var touched: Set<TopicPartition> = []
        for message in messages {
            if draining || failure != nil {
                message.destroy()
                continue
            }
            if message.isError {
                defer { message.destroy() }
                do {
                    try consumer.handleErrorMessage(message)
                } catch {
                    failure = error
                    beginDraining()
                }
                continue
            }
            let partition = TopicPartition(topic: message.topic, partition: message.partition)
            if let assignment, !assignment.contains(partition) {
                message.destroy()  // revoked meanwhile: its next owner reads it
                continue
            }
            if progress[partition] == nil {
                nextEpoch += 1
                progress[partition] = Progress(epoch: nextEpoch)
            }
            progress[partition]!.take(message.offset)
            touched.insert(partition)
            if message.isTombstone {
                pendingCounts.tombstones += 1
                progress[partition]!.finish(message.offset)
                message.destroy()
                continue
            }
            let decoded: Result<WorkflowEvent, WorkflowEventValidationError> = message.withValue { bytes in
                Result { () throws(WorkflowEventValidationError) in try WorkflowEvent.decode(bytes) }
            }
            switch decoded {
            case .success(let event):
                nextID += 1
                let item = WorkItem(
                    id: nextID, key: orderingKey.key(event), partition: partition, epoch: progress[partition]!.epoch,
                    offset: message.offset, event: event, message: message)
                enqueue(item)
            case .failure(let error):
                pendingCounts.invalid += 1
                logger.info(
                    deadLettering ? "an invalid event goes to the dead-letter topic" : "skipped an invalid event",
                    metadata: WorkflowEventConsumer.coordinates(message.topic, message.partition, message.offset)
                        .merging(["reason": "\(error)"]) { $1 })
                let record = message.record
                message.destroy()
                if deadLettering {
                    do {
                        try await consumer.deadLetter(record, kind: "invalid-event", reason: "\(error)")
                    } catch {
                        failure = error
                        beginDraining()
                        continue
                    }
                }
                progress[partition]?.finish(record.offset)
            }
        }
        storeProgress()
        applyFlowControl(touched)
    }

    private func enqueue(_ item: WorkItem) {
        inMemory += 1
        progress[item.partition]!.inMemory += 1
        let wasIdle = pending[item.key] == nil
        pending[item.key, default: Deque()].append(item)
        if wasIdle && !runningKeys.contains(item.key) {
            ready.append(item.key)
        }
        peak = max(peak, inMemory)
    }

    private var peak = 0
    private var reportedPeak = 0

    // MARK: Running handlers

    private func schedule() {
        while running.count < maxConcurrency, let key = ready.popFirst() {
            guard var queue = pending[key], let item = queue.popFirst() else { continue }
            pending[key] = queue.isEmpty ? nil : queue
            start(item)
        }
    }

    private func start(_ item: WorkItem) {
        let handler = self.handler
        let mailbox = self.mailbox
        let policy = retryPolicy
        let consumer = self.consumer
        let event = item.event
        let id = item.id
        delivered += 1
        // A task of its own: cancelling `process` must not cancel the handlers in flight,
        // which get the drain timeout to finish.
        let message = WorkflowEventMessage(
            event: event, topic: item.partition.topic, partition: item.partition.partition, offset: item.offset,
            key: item.message.key, headers: item.message.headers, timestamp: nil)
        let group = consumer.configuration.groupID
        let metrics = consumer.metrics
        let task = Task.detached {
            let started = ContinuousClock.now
            let outcome = await callWithRetries(policy, onRetry: { _, _ in await consumer.count(\.handlerRetries, 1) }) {
                try await WorkflowEventConsumer.withEventSpan(message, group: group) { try await handler(event) }
            }
            metrics.handlerDuration.record(since: started)
            mailbox.post(.finished(id: id, outcome: outcome))
        }
        running[id] = (item, task)
        runningKeys.insert(item.key)
    }

    private func finish(_ id: Int, _ outcome: HandlerOutcome) async {
        guard let (item, _) = running.removeValue(forKey: id) else { return }
        runningKeys.remove(item.key)
        defer { item.message.destroy() }
        var done = true
        switch outcome {
        case .succeeded:
            break
        case .abandoned:
            done = false
        case .failed(let error):
            pendingCounts.failures += 1
            logger.info(
                deadLettering
                    ? "event handler failed; sending the event to the dead-letter topic"
                    : "event handler failed; continuing with the next event",
                metadata: WorkflowEventConsumer.coordinates(
                    item.partition.topic, item.partition.partition, item.offset, event: item.event
                ).merging(["error": "\(error)"]) { $1 })
            if deadLettering {
                do {
                    try await consumer.deadLetter(item.message.record, kind: "handler-failed", reason: "\(error)")
                } catch {
                    done = false
                    failure = failure ?? error
                    beginDraining()
                }
            }
        }
        inMemory -= 1
        if progress[item.partition]?.epoch == item.epoch {
            progress[item.partition]!.inMemory -= 1
            if done { progress[item.partition]!.finish(item.offset) }
        }
        // The key's next event, if any, becomes ready.
        if pending[item.key] != nil { ready.append(item.key) }
        storeProgress()
        applyFlowControl(CollectionOfOne(item.partition))
        for revocation in revocations where revocation.partitions.contains(item.partition) {
            completeRevocation(token: revocation.token, timedOut: false)
        }
    }

    // MARK: Offsets and flow control

    /// Stores, for each partition, the first offset not finished (when it moved).
    private func storeProgress() {
        var entries: [(TopicPartition, Int64)] = []
        for (partition, state) in progress {
            let committable = state.committable
            if committable > state.stored {
                progress[partition]!.stored = committable
                entries.append((partition, committable))
            }
        }
        client.store(entries)
    }

    /// Pauses a partition that holds too many unfinished events (every partition when the
    /// total is reached), and resumes it when there is room again. Looks at `touched` only,
    /// unless the total crossed its limit.
    private func applyFlowControl(_ touched: some Sequence<TopicPartition>) {
        guard !draining else { return }
        let full = inMemory >= limits.maxBufferedEvents
        let partitions: [TopicPartition] = full != totalFull ? Array(client.assignment) : Array(touched)
        totalFull = full
        var pause: [TopicPartition] = []
        var resume: [TopicPartition] = []
        for partition in partitions {
            guard var state = progress[partition] else {
                // Not read from yet: paused with the others while the total is full, or its
                // messages would keep coming until its first batch is seen.
                if full, !pausedUnseen.contains(partition) {
                    pausedUnseen.insert(partition)
                    pause.append(partition)
                } else if !full, pausedUnseen.remove(partition) != nil {
                    resume.append(partition)
                }
                continue
            }
            if pausedUnseen.remove(partition) != nil {
                state.paused = true
                progress[partition] = state
            }
            let shouldPause = full || state.inMemory >= limits.maxBufferedEventsPerPartition
            if shouldPause != state.paused {
                state.paused = shouldPause
                progress[partition] = state
                if shouldPause { pause.append(partition) } else { resume.append(partition) }
            }
        }
        client.setPaused(true, pause)
        client.setPaused(false, resume)
    }

    // MARK: Revocation

    private var revocationTokens = 0

    private func revoke(
        _ partitions: [TopicPartition], lost: Bool, reply: @escaping @Sendable ([(TopicPartition, Int64)]) -> Void
    ) {
        let revoked = Set(partitions)
        // Events not started are dropped: the next owner reads them from the commit.
        for (key, queue) in pending {
            var kept = queue
            kept.removeAll { item in
                guard revoked.contains(item.partition) else { return false }
                item.message.destroy()
                inMemory -= 1
                progress[item.partition]?.inMemory -= 1
                return true
            }
            pending[key] = kept.isEmpty ? nil : kept
        }
        revocationTokens += 1
        let revocation = Revocation(token: revocationTokens, partitions: lost ? [] : revoked, reply: reply)
        if lost {
            // Lost partitions cannot be committed: their handlers' results no longer count.
            for partition in revoked { progress[partition] = nil }
            reply([])
            return
        }
        revocations.append(revocation)
        mailbox.post(.revocationDeadline(revocation.token), after: limits.drainTimeout)
        completeRevocation(token: revocation.token, timedOut: false)
    }

    /// Hands the partitions over once their handlers in flight have ended, or at the
    /// deadline: stores their finished run (librdkafka commits it as it unassigns them).
    private func completeRevocation(token: Int, timedOut: Bool) {
        guard let index = revocations.firstIndex(where: { $0.token == token }) else { return }
        let revocation = revocations[index]
        let busy = running.values.contains { revocation.partitions.contains($0.item.partition) }
        guard !busy || timedOut else { return }
        if busy {
            logger.info("handing over partitions while their handlers still run", metadata: ["partitions": "\(revocation.partitions.sorted())"])
        }
        storeProgress()
        let entries = revocation.partitions.compactMap { partition in
            progress[partition].flatMap { $0.next >= 0 ? (partition, $0.committable) : nil }
        }
        for partition in revocation.partitions { progress[partition] = nil }
        revocations.remove(at: index)
        revocation.reply(entries)
    }

    // MARK: Stopping

    private func beginDraining() {
        guard !draining else { return }
        draining = true
        stopFetcher()
        // Not started: dropped, read again by whoever reads next.
        for (_, queue) in pending {
            var queue = queue
            while let item = queue.popFirst() {
                item.message.destroy()
                inMemory -= 1
                progress[item.partition]?.inMemory -= 1
            }
        }
        pending = [:]
        ready = Deque()
        if !running.isEmpty { mailbox.post(.drainDeadline, after: limits.drainTimeout) }
    }

    private func flushCounters() async {
        let counts = pendingCounts
        let newlyDelivered = delivered
        let peakNow = peak
        delivered = 0
        pendingCounts = (0, 0, 0)
        if counts.invalid > 0 { await consumer.count(\.invalidEvents, counts.invalid) }
        if counts.tombstones > 0 { await consumer.count(\.tombstones, counts.tombstones) }
        if counts.failures > 0 { await consumer.count(\.handlerFailures, counts.failures) }
        if newlyDelivered > 0 { await consumer.count(\.eventsDelivered, newlyDelivered) }
        if peakNow > reportedPeak {
            reportedPeak = peakNow
            await consumer.notePeakInProcessing(peakNow)
        }
    }
}

/// A flag one task sets and another reads.
final class StopFlag: Sendable {
    private let value = Atomic<Bool>(false)
    var isSet: Bool { value.load(ordering: .acquiring) }
    func set() { value.store(true, ordering: .releasing) }
    func clear() { value.store(false, ordering: .releasing) }
}
