// The ways of reading: streams, callback loops and poll.

import Foundation
import Logging
import Metrics
import Synchronization
import Tracing

extension WorkflowEventConsumer {
    /// The events of `topics`, in order per partition, until the reading task is cancelled,
    /// the consumer is closed, or (when `idleTimeout` is set) no event has come for that
    /// long. Subscribes on the first iteration. A new group member's idle time counts from
    /// its first assignment, since joining a group takes seconds.
    ///
    /// Each event's offset is stored once the loop asks for the next one, that is once its
    /// body has returned. Cancelling the iterating task closes the consumer; the event in
    /// hand then is not stored (a body that threw because it was cancelled has not finished,
    /// and the stream cannot tell it from one that returned), and the group's next owner
    /// reads it again. When the cancellation lands between two iterations, the close
    /// completes just after the loop has ended;
    /// ``withWorkflowEventConsumer(configuration:logger:isolation:_:)`` always waits for it.
    /// Leaving the loop with `break` or a thrown error, or the stream ending after
    /// `idleTimeout`, leaves the consumer open for `commit`, more reading or `close`; the
    /// event in hand at a `break` or a throw is not stored, and the next read delivers it
    /// again.
    ///
    /// One reader at a time: while a stream holds an event (until its loop ends and the
    /// stream is released), another stream, ``consumeEvents(topics:timeout:_:)``,
    /// ``poll(timeout:)`` or `process` throws ``WorkflowEventsError`` `readerBusy`.
    public nonisolated func events(
        topics: [String], idleTimeout: Duration? = nil
    ) -> AsyncThrowingStream<WorkflowEvent, any Error> {
        stream(topics: topics, idleTimeout: idleTimeout) { $0.nextEvent() }
    }

    /// The same stream as ``events(topics:idleTimeout:)``, with each event's topic,
    /// partition, offset, key, headers and timestamp.
    public nonisolated func messages(
        topics: [String], idleTimeout: Duration? = nil
    ) -> AsyncThrowingStream<WorkflowEventMessage, any Error> {
        stream(topics: topics, idleTimeout: idleTimeout) { $0.nextMessage(withCoordinates: true) }
    }

    /// The events of `topics` in batches of validated events, each with its coordinates: the
    /// fastest way to read, for work done a batch at a time (a bulk insert, say).
    ///
    /// A batch holds up to `maxCount` events. Once the first event of a batch is there, it
    /// waits up to `maxWait` for the rest; an empty batch is never delivered. Tombstones and
    /// invalid events are skipped as in ``events(topics:idleTimeout:)``: logged, counted,
    /// and dead-lettered when there is a `deadLetterTopic`.
    ///
    /// The unit of work is the batch: its offsets are stored once the loop asks for the next
    /// batch, that is once its body has returned. A `commit()` from the body includes the
    /// batch in hand. Leaving the loop with `break` or a thrown error leaves the batch in
    /// hand unstored, and the next read delivers its events again; cancelling the iterating
    /// task closes the consumer without storing it. The stream ends as
    /// ``events(topics:idleTimeout:)`` does.
    public nonisolated func batches(
        topics: [String], maxCount: Int = 500, maxWait: Duration = .milliseconds(100), idleTimeout: Duration? = nil
    ) -> AsyncThrowingStream<[WorkflowEventMessage], any Error> {
        guard maxCount >= 1, maxWait >= .zero else {
            let error = WorkflowEventsError(
                .invalidConfiguration,
                "batches(topics:maxCount:maxWait:): maxCount is \(maxCount) and maxWait \(maxWait); maxCount must be at least 1 and maxWait not negative"
            )
            return AsyncThrowingStream { $0.finish(throwing: error) }
        }
        return stream(topics: topics, idleTimeout: idleTimeout, gathering: .init(count: maxCount, wait: maxWait)) {
            $0.nextMessages(upTo: maxCount)
        }
    }

    /// A stream whose elements `take` reads from the reader's batch: most come from the batch
    /// in hand, without a call to the actor; the actor is asked only for the next batch.
    private nonisolated func stream<Element>(
        topics: [String], idleTimeout: Duration?, gathering: ReaderBatch.Gathering? = nil,
        _ take: @escaping @Sendable (ReaderBatch) -> Element?
    ) -> AsyncThrowingStream<Element, any Error> {
        let reader = Self.makeReaderID()
        let batch = ReaderBatch(gathering: gathering)
        return .watched(
            onEnd: { [self] end in
                switch end {
                // Cancelled: the consumer closes; the event in hand is not stored (the loop
                // body may have ended because of the cancellation, by a throw the stream
                // cannot see).
                case .cancelled: Task { await self.close() }
                // Let go of: the reader's turn ends, and its event in hand is read again.
                case .released: self.releasedReaders.insert(reader)
                }
            },
            take: { take(batch) },
            refill: { [self] in try await self.refill(batch, reader: reader, topics: topics, idle: idleTimeout) })
    }

    /// Calls `handler` with each event of `topics` (the seed's `consume_events`).
    ///
    /// Returns when no new event has come for `timeout` (the configuration's
    /// `consumerTimeout` when nil; for a new group member, counted from its first
    /// assignment), or when the calling task is cancelled (which closes the consumer). A
    /// handler that throws is retried under the configuration's `retryPolicy`, then logged,
    /// counted and dead-lettered (when there is a `deadLetterTopic`), and the next event
    /// follows. A handler that ends because its task was cancelled has not finished: its
    /// event is neither retried, counted, dead-lettered nor stored, and the consumer closes.
    ///
    /// - Returns: How many events were passed to `handler`.
    @discardableResult
    nonisolated(nonsending) public func consumeEvents(
        topics: [String],
        timeout: Duration? = nil,
        _ handler: (WorkflowEvent) async throws -> Void
    ) async throws -> Int {
        try await handleEach(topics: topics, idle: timeout ?? configuration.consumerTimeout, stop: nil, handler)
    }

    /// Calls `handler` with each event of `topics` until ``stopServing()`` is called or the
    /// calling task is cancelled (which closes the consumer): a service's main loop. The
    /// event in hand finishes first; the consumer stays open for `close()`. Handler errors
    /// follow the rules of ``consumeEvents(topics:timeout:_:)``. At its start it waits for
    /// the cluster as long as it takes (or `clusterWaitLimit`), trying again with backoff.
    ///
    /// - Returns: How many events were passed to `handler`.
    @discardableResult
    nonisolated(nonsending) public func serve(
        topics: [String],
        _ handler: (WorkflowEvent) async throws -> Void
    ) async throws -> Int {
        // A service may start before Kafka: its first subscription waits for the cluster.
        _ = try await waitForCluster(stop: serveStop)
        return try await handleEach(topics: topics, idle: nil, stop: serveStop, handler)
    }

    /// Ends ``serve(topics:_:)`` after the event in hand, from any thread. Called while no
    /// `serve` runs, it ends the next one at once; a later `serve` serves again.
    public nonisolated func stopServing() {
        serveStop.set()
        client.wakeUp()
    }

    nonisolated(nonsending) func handleEach(
        topics: [String], idle: Duration?, stop: StopFlag?, _ handler: (WorkflowEvent) async throws -> Void
    ) async throws -> Int {
        let reader = Self.makeReaderID()
        let batch = ReaderBatch()
        var handled = 0
        // The key, headers and topic cost allocations per event: read only when a span
        // needs them (a failure reads them from the message still held).
        let tracing = Self.isTracing
        defer { if stop != nil { serveStop.clear() } }
        while stop?.isSet != true {
            // A cancelled task takes no further event from the batch: the refill closes.
            var next = Task.isCancelled ? nil : batch.nextMessage(withCoordinates: tracing)
            // A revocation may take back a batch's events between its refill and the first
            // take: then the next refill follows (only the refill's false ends the loop).
            while next == nil, try await refill(batch, reader: reader, topics: topics, idle: idle, stop: stop) {
                next = batch.nextMessage(withCoordinates: tracing)
            }
            guard let message = next else { break }
            let started = ContinuousClock.now
            let noteRetry: (any Error, Int) async -> Void = { error, failures in
                await self.recordHandlerRetry(error, message: batch.inHand()?.message ?? message, failures: failures)
            }
            let outcome = await callWithRetries(configuration.retryPolicy, clock: clock, onRetry: noteRetry) {
                try await Self.withEventSpan(message, group: configuration.groupID, tracing: tracing) { try await handler(message.event) }
            }
            metrics.handlerDuration.record(since: started)
            switch outcome {
            case .succeeded:
                break
            case .failed(let error):
                do {
                    try await recordHandlerFailure(error, held: batch.inHand(), message: message)
                } catch {
                    await release(reader: reader)
                    throw error
                }
            case .abandoned:
                // Cancelled: the event is not done, so it is not stored; the consumer closes
                // and the next owner reads it again.
                await close()
                return handled + 1
            }
            handled += 1
        }
        // Stopped (serve): the event in hand has finished.
        await finishReading(reader: reader, batch: batch)
        return handled
    }

    /// Takes the records that arrive within `timeout`, at most `maxPollRecords` (500 when
    /// nil), grouped by partition; returns as soon as there is at least one. Records are raw:
    /// validate them with ``ConsumerRecord/event()``.
    ///
    /// The records of one `poll` count as processed at the next `poll`, `commit` or `close`.
    public func poll(timeout: Duration = .milliseconds(1000)) async throws -> [TopicPartition: [ConsumerRecord]] {
        try checkOpen("poll")
        reclaimReleasedReaders()
        try checkNoReader("poll")
        guard subscription != nil else {
            throw WorkflowEventsError(.invalidConfiguration, "poll needs a subscription: call subscribe(_:) first")
        }
        storePolledOffsets()
        lastRead = clock.now()
        let limit = configuration.maxPollRecords ?? 500
        let deadline = clock.now().advanced(by: timeout)
        var records: [TopicPartition: [ConsumerRecord]] = [:]
        var count = 0
        polling: while true {
            while count < limit, let message = fetcher.buffer.popFirst() {
                if message.isError {
                    guard let error = errorToThrow(message) else {
                        message.destroy()
                        continue
                    }
                    if count > 0 {
                        // The records before it are returned first; the error comes next time.
                        fetcher.buffer.prepend([message])
                        break polling
                    }
                    message.destroy()
                    throw error
                }
                defer { message.destroy() }
                let record = message.record
                let partition = record.topicPartition
                records[partition, default: []].append(record)
                count += 1
            }
            if count > 0 || clock.now() >= deadline { break }
            if Task.isCancelled {
                await close()
                throw CancellationError()
            }
            try checkOpen("poll")
            try await fill(until: deadline, readAhead: .raw)
        }
        if !seekPositions.isEmpty {
            for partition in records.keys { seekPositions[partition] = nil }
        }
        // Taken, and finished at the next poll: stored then.
        trackOffsets { tracker in
            for (partition, polled) in records {
                for record in polled { tracker.take(record.offset, of: partition) }
            }
        }
        counters.eventsDelivered += count
        metrics.events.increment(by: count)
        if count > 0 { lastEventTime = Date() }
        return records
    }
}
