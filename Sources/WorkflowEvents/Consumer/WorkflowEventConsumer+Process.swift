// Ordered concurrent processing: the public `process` call and its options.

import CoreMetrics
import DequeModule
import Dispatch
import Foundation
import Logging
import Synchronization

extension WorkflowEventConsumer {
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
        // The processing runs in a scope of its own, which the caller's cancellation reaches
        // as a signal to drain (handlers in flight get `drainTimeout` to finish), not as the
        // immediate cancellation of every handler.
        let scope = Task { await processor.run(first: handedOver) }
        let outcome: Result<Void, any Error> = await withTaskCancellationHandler {
            await scope.value
        } onCancel: {
            processor.mailbox.post(.stop)
        }
        await endProcessing()
        try outcome.get()
    }

    /// Takes over the reading: what an earlier reader fetched and did not finish is handed to
    /// the processor (returned, in order), the busy reader's keep-alive stops, and its
    /// pause is lifted.
    private func beginProcessing(_ topics: [String]) async throws -> [FetchedMessage] {
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
        context.state.withLock { $0.revocationHook = nil }
        // What the handlers finished is stored; the rest, unfinished, never will be.
        trackOffsets { $0.forgetAll() }
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
