// Who reads: one reader at a time, and what happens to its batch when it lets go.

import Foundation
import Logging
import Metrics
import Synchronization
import Tracing

extension WorkflowEventConsumer {
    /// Refuses a second way of reading while `process` runs.
    func checkNotProcessing(_ operation: String) throws {
        if reading.isProcessing {
            throw WorkflowEventsError(
                .readerBusy, "cannot \(operation) while process(topics:) reads from this consumer; use another consumer")
        }
    }

    /// Refuses a reader while another one reads (or `process` runs).
    func checkNoReader(_ operation: String, except reader: Int? = nil) throws {
        switch reading {
        case .idle:
            return
        case .processing:
            try checkNotProcessing(operation)
        case .reader(let id, _):
            guard id != reader else { return }
            throw WorkflowEventsError(
                .readerBusy,
                "cannot \(operation): another reader (a stream or a consumeEvents/serve loop) is reading from this consumer; end its loop and release the stream first, or use a second consumer"
            )
        }
    }

    /// Makes `reader` the consumer's reader; records of an earlier `poll` count as processed.
    func claim(reader: Int, batch: ReaderBatch) throws {
        // Every batch passes here: the reader already reading goes on without a look at the
        // released ones (a released stream never asks again).
        if case .reader(reader, _) = reading { return }
        reclaimReleasedReaders()
        try checkNoReader("read events", except: reader)
        storePolledOffsets()
        setReading(.reader(id: reader, batch: batch))
    }

    /// Who reads; librdkafka's rebalance callback sees the reader's batch.
    func setReading(_ state: ReadingState) {
        reading = state
        context.state.withLock { $0.readerBatch = state.batch }
    }

    /// Ends `reader`'s turn. Its event in hand was not finished: it goes back to the front
    /// of the buffer, unstored, for the next read.
    func release(reader: Int) {
        guard case .reader(reader, let batch) = reading else { return }
        setReading(.idle)
        settle(batch.release())
    }

    /// Ends `reader`'s turn after its event in hand has finished (`serve` stopped).
    func finishReading(reader: Int, batch: ReaderBatch) {
        guard case .reader(reader, let current) = reading, current === batch else { return }
        batch.finishInHand()
        release(reader: reader)
    }

    /// Stores the offsets, destroys and puts back what was taken out of a reader's batch.
    func settle(_ taken: ReaderBatch.Taken) {
        finish(lastOffsets: taken.store)
        for message in taken.messages[taken.destroyed] { message.destroy() }
        putBack(taken.giveBack)
        counters.eventsDelivered += taken.delivered
        metrics.events.increment(by: taken.delivered)
    }

    /// Messages given back by a reader, in front of the buffer; those of partitions revoked
    /// meanwhile are dropped (their next owner reads them).
    func putBack(_ messages: [FetchedMessage]) {
        guard !messages.isEmpty else { return }
        guard configuration.groupID != nil else { return fetcher.buffer.prepend(messages) }
        let assignment = context.assignment
        var kept: [FetchedMessage] = []
        kept.reserveCapacity(messages.count)
        for message in messages {
            if message.isError || assignment.contains(TopicPartition(topic: message.topic, partition: message.partition)) {
                kept.append(message)
            } else {
                message.destroy()
            }
        }
        fetcher.buffer.prepend(kept)
    }

    /// Releases the streams whose iterating task let go of them.
    func reclaimReleasedReaders() {
        for reader in releasedReaders.take() { release(reader: reader) }
    }

    /// `process` becomes the reader, if no other reader reads and no partition is paused
    /// by the application (`process` pauses and resumes partitions itself).
    func beginReadingForProcess() throws {
        reclaimReleasedReaders()
        if reading.isProcessing {
            throw WorkflowEventsError(.readerBusy, "process(topics:) is already running on this consumer")
        }
        try checkNoReader("process")
        guard userPaused.isEmpty else {
            throw WorkflowEventsError(
                .invalidConfiguration,
                "cannot process while partitions \(userPaused.sorted().map(\.description).joined(separator: ", ")) are paused with pause(_:): resume them first (process pauses and resumes partitions by itself)"
            )
        }
        setReading(.processing)
    }

    /// Stops what served an earlier reader (the keep-alive, its pause, a fetch or a batch
    /// read ahead) and hands over, in order, what it fetched and did not deliver.
    func takeOverReading() async throws -> [FetchedMessage] {
        keepAlive?.cancel()
        keepAlive = nil
        await fetcher.acquire()
        fetcher.release()
        try checkOpen("process")
        fetcher.liftKeepAlivePause()
        // Records of an earlier poll count as processed, as at the next poll.
        storePolledOffsets()
        return fetcher.takeAll()
    }

    /// `process` has ended.
    func endReadingForProcess() {
        if reading.isProcessing { setReading(.idle) }
    }

    func checkGroup(_ operation: String) throws {
        guard configuration.groupID != nil else {
            throw WorkflowEventsError(
                .groupRequired, "cannot \(operation) without a consumer group: set groupID in the configuration")
        }
    }

    /// The records of the last `poll` are processed (the caller polls again, commits, or
    /// reads otherwise): their offsets are stored. Not while `process` runs: what its
    /// handlers took finishes one by one.
    func storePolledOffsets() {
        guard !reading.isProcessing else { return }
        trackOffsets { $0.finishAllTaken() }
    }

    /// A handler failed for good: logged and counted, and dead-lettered when there is a
    /// dead-letter topic. Throws when the dead-letter topic did not store it (the event is
    /// then not stored either, and is read again).
    func recordHandlerFailure(
        _ error: any Error, held: (message: WorkflowEventMessage, record: ConsumerRecord)?, message: WorkflowEventMessage
    ) async throws {
        counters.handlerFailures += 1
        metrics.handlerFailures.increment()
        logHandlerFailure(error, held?.message ?? message)
        guard configuration.deadLetterTopic != nil, let held else { return }
        try await deadLetter(held.record, kind: "handler-failed", reason: "\(error)")
    }

    func recordHandlerRetry(_ error: any Error, message: WorkflowEventMessage, failures: Int) {
        counters.handlerRetries += 1
        logger.debug(
            "event handler failed; retrying",
            metadata: Self.coordinates(message.topic, message.partition, message.offset, event: message.event)
                .merging(["error": "\(error)", "attempt": "\(failures)"]) { $1 })
    }

}
