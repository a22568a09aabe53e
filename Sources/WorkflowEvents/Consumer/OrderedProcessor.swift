// The loop behind `process`: keys, partitions, handlers, flow control and revocation.

import CoreMetrics
import DequeModule
import Dispatch
import Foundation
import Logging
import Synchronization

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
        let message: FetchedMessage
    }

    /// An event given to a worker: what the loop needs of it once the worker reports back.
    struct InFlight {
        let key: String
        let partition: TopicPartition
        let epoch: Int
        let offset: Int64
        let message: FetchedMessage
    }

    /// A partition being read: its offsets are in the client's `OffsetTracker`.
    struct Progress {
        /// Tells a handler's result for this partition apart from one of an earlier
        /// assignment of it.
        let epoch: Int
        var inMemory = 0
        var paused = false
    }

    struct Revocation {
        let token: Int
        let partitions: Set<TopicPartition>
        let reply: RevocationReply
        /// The epoch of each partition when the revocation came: what it hands over.
        let epochs: [TopicPartition: Int]
    }

    let mailbox = Mailbox()
    let consumer: WorkflowEventConsumer
    let client: any ConsumerClient
    let logger: Logger
    let maxConcurrency: Int
    let orderingKey: WorkflowEventConsumer.OrderingKey
    let limits: WorkflowEventConsumer.ProcessingLimits
    let handler: @Sendable (WorkflowEvent) async throws -> Void
    let retryPolicy: WorkflowEventConsumer.RetryPolicy
    let deadLettering: Bool

    var nextID = 0
    var nextEpoch = 0
    var progress: [TopicPartition: Progress] = [:]
    var pending: [String: Deque<WorkItem>] = [:]
    var spareQueues: [Deque<WorkItem>] = []
    var ready = Deque<String>()
    /// Events given to a worker and not yet reported back.
    var running: [Int: InFlight] = [:]
    /// Workers: child tasks of the loop's handler group, each running its events one after
    /// the other; at most `maxConcurrency`.
    var workers = 0
    /// Events given to a worker that it must skip if it has not started them (their
    /// partition was revoked).
    let withdrawn = WithdrawnEvents()
    /// Set when the loop drains: workers start no further event.
    let stopStarting = StopFlag()
    /// Partitions whose flow control is to be looked at when the loop next catches up.
    var touchedSinceBookkeeping: Set<TopicPartition> = []
    var inMemory = 0
    var revocations: [Revocation] = []
    var revocationTokens = 0
    /// Per key, its events given to workers and not yet reported back.
    var runningKeys: [String: Int] = [:]
    var totalFull = false
    /// Partitions paused while the total was full before any of their messages came.
    var pausedUnseen: Set<TopicPartition> = []
    var draining = false
    var failure: (any Error)?
    let timers: ProcessingTimers
    let stopFetching = StopFlag()
    var delivered = 0

    init(
        consumer: WorkflowEventConsumer, maxConcurrency: Int, orderingKey: WorkflowEventConsumer.OrderingKey,
        limits: WorkflowEventConsumer.ProcessingLimits, handler: @escaping @Sendable (WorkflowEvent) async throws -> Void
    ) {
        self.consumer = consumer
        self.timers = ProcessingTimers(clock: consumer.clock)
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
    func run(first: [FetchedMessage]) async -> Result<Void, any Error> {
        let mailbox = self.mailbox
        let drainTimeout = limits.drainTimeout
        let replyGrace = limits.revocationReplyGrace
        consumer.context.state.withLock { state in
            state.revocationHook = { [client] partitions, lost in
                let reply = RevocationReply()
                // The loop has ended (process is returning): it has stored what it finished,
                // and nothing waits to be handed over.
                guard mailbox.post(.revoke(partitions, lost: lost, reply: reply)) else { return }
                // Bounded: the loop replies within the drain timeout. This runs on
                // librdkafka's polling thread, never on Swift's cooperative pool. Past the
                // bound the rebalance goes on without the loop's commit, and the loop's
                // late answer is dropped (`RevocationReply`).
                let entries = reply.wait(timeout: drainTimeout + replyGrace)
                client.commitBlocking(entries ?? [])
            }
        }
        // The fetcher and the timers beside the loop; the handlers in a group of their own,
        // which the drain deadline cancels. Both groups end with the loop: `process` returns
        // only once every handler has returned.
        return await withDiscardingTaskGroup { services in
            services.addTask { [timers, mailbox] in await timers.serve(mailbox) }
            services.addTask { [self] in await fetch() }
            let result = await withDiscardingTaskGroup { handlers in
                await loop(first: first, handlers: &handlers)
            }
            services.cancelAll()
            return result
        }
    }

    func loop(first: [FetchedMessage], handlers: inout DiscardingTaskGroup) async -> Result<Void, any Error> {
        if !first.isEmpty {
            await ingest(first)
            schedule(in: &handlers)
        }
        var fetcherEnded = false
        while !(draining && running.isEmpty && fetcherEnded) {
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
            case .finished(let completions):
                await finish(completions)
            case .workerEnded:
                workers -= 1
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
                    handlers.cancelAll()
                    timers.schedule(.giveUp, after: .seconds(1))
                }
            case .giveUp:
                if !running.isEmpty {
                    logger.warning(
                        "handlers ignore their cancellation; process returns when they do",
                        metadata: ["count": "\(running.count)"])
                }
            }
            if !draining { schedule(in: &handlers) }
            // Offsets, flow control and counters once the loop has caught up with its
            // signals, not after each one.
            if !mailbox.hasSignals {
                storeProgress()
                applyFlowControl(touchedSinceBookkeeping)
                touchedSinceBookkeeping = []
                await flushCounters()
            }
        }
        storeProgress()
        // What is left was never started, or did not end in time: not stored.
        for (_, queue) in pending {
            var queue = queue
            while let item = queue.popFirst() { item.message.destroy() }
        }
        pending = [:]
        running = [:]
        for revocation in revocations where revocation.reply.claim() { revocation.reply.send([]) }
        revocations = []
        // A revocation posted since the last signal taken is answered at once; a revocation
        // after this is not waited for (see the hook in `run`).
        for signal in mailbox.close() {
            switch signal {
            case .revoke(_, _, let reply):
                if reply.claim() { reply.send([]) }
            case .fetched(let messages, let ack):
                for message in messages { message.destroy() }
                ack()
            default:
                break
            }
        }
        await flushCounters()
        if let failure { return .failure(failure) }
        return .success(())
    }

    // MARK: Fetching

    /// Fetches batches and posts them to the loop until it is told to stop: a child task of
    /// the processing scope.
    func fetch() async {
        let client = self.client
        let mailbox = self.mailbox
        let stopFetching = self.stopFetching
        defer { mailbox.post(.fetcherEnded) }
        while !stopFetching.isSet {
            if client.isClosing {
                mailbox.post(.fetchFailed(WorkflowEventsError(.clientClosed, "the consumer was closed while process(topics:) read from it")))
                return
            }
            // Validated on the poll queue, while the loop works on the batch before.
            let batch = await consumer.fetchForProcess()
            if let error = consumer.takeErrorToThrow() {
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

    func stopFetcher() {
        stopFetching.set()
        client.wakeUp()
    }

    // MARK: Taking events

    /// Counts not yet added to the consumer's statistics (flushed after each signal).
    var pendingCounts = (invalid: 0, tombstones: 0, failures: 0)

    func ingest(_ messages: [FetchedMessage]) async {
        let assignment = consumer.configuration.groupID == nil ? nil : consumer.context.assignment
        var touched: Set<TopicPartition> = []
        var lastTouched: TopicPartition?
        // Offsets taken, and those finished at once (tombstones, invalid events), recorded
        // under one lock: before anything is awaited, and at the end.
        var taken: [(TopicPartition, Int64)] = []
        var finished: [(TopicPartition, Int64)] = []
        taken.reserveCapacity(messages.count)
        func recordTaken() {
            guard !taken.isEmpty || !finished.isEmpty else { return }
            consumer.recordOffsets { tracker in
                for (partition, offset) in taken { tracker.take(offset, of: partition) }
                for (partition, offset) in finished { tracker.finish(offset, of: partition) }
            }
            taken.removeAll(keepingCapacity: true)
            finished.removeAll(keepingCapacity: true)
        }
        for var message in messages {
            if draining || failure != nil {
                message.destroy()
                continue
            }
            if message.isError {
                if let error = consumer.errorToThrow(message) {
                    failure = error
                    beginDraining()
                }
                message.destroy()
                continue
            }
            let partition = TopicPartition(topic: message.topic, partition: message.partition)
            if let assignment, !assignment.contains(partition) {
                message.destroy()  // revoked meanwhile: its next owner reads it
                continue
            }
            // A message of a partition whose revocation is still open here comes from its
            // next assignment: the rebalance stopped waiting for that revocation and went on.
            // What the revocation holds of the partition ends now, before this epoch starts.
            for revocation in revocations where revocation.partitions.contains(partition) {
                recordTaken()
                completeRevocation(token: revocation.token, timedOut: true)
            }
            let epoch: Int
            if let index = progress.index(forKey: partition) {
                epoch = progress.values[index].epoch
            } else {
                nextEpoch += 1
                epoch = nextEpoch
                progress[partition] = Progress(epoch: epoch)
            }
            taken.append((partition, message.offset))
            // librdkafka hands a partition's messages out in runs.
            if partition != lastTouched {
                touched.insert(partition)
                lastTouched = partition
            }
            switch consumer.classify(&message) {
            case .error:
                break  // taken above
            case .tombstone:
                pendingCounts.tombstones += 1
                consumer.logTombstone(message)
                finished.append((partition, message.offset))
                message.destroy()
            case .event(let event):
                nextID += 1
                let item = WorkItem(
                    id: nextID, key: orderingKey.key(event), partition: partition, epoch: epoch,
                    offset: message.offset, event: event, message: message)
                enqueue(item)
            case .invalid(let error):
                pendingCounts.invalid += 1
                consumer.logInvalidEvent(message, error)
                let record = message.record
                message.destroy()
                if deadLettering {
                    recordTaken()
                    do {
                        try await consumer.deadLetter(record, kind: "invalid-event", reason: "\(error)")
                    } catch {
                        failure = error
                        beginDraining()
                        continue
                    }
                }
                if progress[partition] != nil {
                    finished.append((partition, record.offset))
                }
            }
        }
        recordTaken()
        storeProgress()
        applyFlowControl(touched)
    }

    func enqueue(_ item: consuming WorkItem) {
        inMemory += 1
        if let index = progress.index(forKey: item.partition) { progress.values[index].inMemory += 1 }
        let key = item.key
        if let index = pending.index(forKey: key) {
            pending.values[index].append(item)
        } else {
            // A key's queue is usually emptied before its next event comes: its storage is
            // reused, not allocated again per event.
            var queue = spareQueues.popLast() ?? Deque()
            queue.append(item)
            pending[key] = queue
            if runningKeys[key] == nil { ready.append(key) }
        }
        peak = max(peak, inMemory)
    }

    /// Emptied key queues whose storage the next new key takes.
    static let spareQueueLimit = 64

    var peak = 0
    var reportedPeak = 0
}
