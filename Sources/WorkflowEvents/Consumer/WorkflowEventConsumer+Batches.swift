// Handing a stream or callback loop its batches of validated events.

import Foundation
import Logging
import Metrics
import Synchronization
import Tracing

extension WorkflowEventConsumer {
    /// How often a reader past its idle deadline asks again whether it has caught up.
    static let backlogRecheckInterval = Duration.milliseconds(250)

    /// Hands `reader` its next batch of valid events, once everything it was handed has
    /// finished (their offsets are stored here). Returns false when no event has come for
    /// `idle` (counted from the first assignment for a new group member) while this member
    /// has read everything its partitions held (see ``backlog()``), the consumer is
    /// closed, or the task is cancelled (which closes the consumer): the reader has then let
    /// go of the consumer, as it has when this throws.
    func refill(
        _ batch: ReaderBatch, reader: Int, topics: [String], idle: Duration?, stop: StopFlag? = nil
    ) async throws -> Bool {
        do {
            if try await readBatch(batch, reader: reader, topics: topics, idle: idle, stop: stop) { return true }
        } catch {
            release(reader: reader)
            throw error
        }
        release(reader: reader)
        return false
    }

    func readBatch(
        _ batch: ReaderBatch, reader: Int, topics: [String], idle: Duration?, stop: StopFlag?
    ) async throws -> Bool {
        if case .reader(reader, let current) = reading, current === batch { settle(batch.takeFinished()) }
        if Task.isCancelled {
            await close()
            return false
        }
        guard machine.isOpen else { return false }
        try claim(reader: reader, batch: batch)
        if subscription?.serves(topics) != true {
            try await subscribe(topics)
        }
        lastRead = clock.now()
        if configuration.groupID != nil && !fetcher.buffer.isEmpty && lastRead - fetcher.lastFetch >= Self.serviceInterval {
            await serviceWhileBusy(pauseAfter: .seconds(Int64.max))
        }
        var deadline = idle.map { clock.now().advanced(by: $0) }
        var awaitingAssignment = idle != nil && isAwaitingFirstAssignment
        /// When the idle deadline first found this member behind.
        var behindSince: ContinuousClock.Instant?
        /// A batch reader's batch waits for more events until then, once one is there.
        var gatheredBy: ContinuousClock.Instant?
        while true {
            if let error = takeErrorToThrow() { throw error }
            if let gathering = batch.gathering, !fetcher.buffer.isEmpty, fetcher.buffer.count < gathering.count {
                let now = clock.now()
                let until = gatheredBy ?? now.advanced(by: gathering.wait)
                gatheredBy = until
                if now < until, machine.isOpen, !Task.isCancelled, stop?.isSet != true {
                    try await fill(until: until, readAhead: .decoded)
                    continue
                }
            }
            if try await triage(into: batch) { return true }
            if awaitingAssignment, !isAwaitingFirstAssignment, let idle {
                awaitingAssignment = false
                deadline = clock.now().advanced(by: idle)
            }
            if !awaitingAssignment, let idle, let reached = deadline, clock.now() >= reached {
                // Idle only once caught up: while the partitions hold events this member has
                // not read (or their end is not known yet), the clock does not count. A batch
                // read ahead has moved librdkafka's position: it is read first.
                await fetcher.absorbReadAhead()
                if !fetcher.buffer.isEmpty { continue }
                let backlog = await backlog()
                if backlog.isCaughtUp { return false }
                let now = clock.now()
                let behind = behindSince ?? now
                behindSince = behind
                if now - behind >= configuration.behindTimeout {
                    throw KafkaError(
                        code: .timedOut,
                        message:
                            "no event for \(idle + (now - behind)) while not caught up (\(backlog)); last error from librdkafka: \(context.state.withLock { $0.lastError } ?? "none")",
                        operation: "read", isRetriable: true)
                }
                logger.debug("idle timeout reached while not caught up: reading on", metadata: ["backlog": "\(backlog)"])
                deadline = now.advanced(by: min(idle, Self.backlogRecheckInterval))
            }
            if stop?.isSet == true { return false }
            if Task.isCancelled {
                await close()
                return false
            }
            guard machine.isOpen else { return false }
            try await fill(until: awaitingAssignment ? nil : deadline, readAhead: .decoded)
        }
    }

    /// Moves the buffer's valid events into `batch`, up to `fetchBatchSize`, and returns
    /// whether there is one. On the way, a tombstone is skipped and an invalid event skipped
    /// or dead-lettered, its offset stored, but only while no event of its partition waits
    /// in the batch (the batch ends before it otherwise): an offset is never stored past an
    /// unfinished event. An error the caller must act on ends the batch, and is thrown once
    /// the events before it are done.
    func triage(into batch: ReaderBatch) async throws -> Bool {
        var messages: [FetchedMessage] = []
        var events: [WorkflowEvent?] = []
        let limit = batch.gathering?.count ?? configuration.fetchBatchSize
        messages.reserveCapacity(min(limit, fetcher.buffer.count))
        events.reserveCapacity(min(limit, fetcher.buffer.count))
        func holdsPartition(of message: FetchedMessage) -> Bool {
            let topic = message.topic
            return messages.contains { $0.partition == message.partition && $0.topic == topic }
        }
        // Read once (it is behind the callback context's lock), and again after an await.
        var paused = userPaused
        taking: while messages.count < limit, var message = fetcher.buffer.popFirst() {
            if !paused.isEmpty, !message.isError {
                let partition = TopicPartition(topic: message.topic, partition: message.partition)
                if paused.contains(partition) {
                    fetcher.hold(message, of: partition)
                    continue
                }
            }
            let kind = classify(&message)
            switch kind {
            case .error(nil):
                message.destroy()
                continue
            case .error(let error?):
                guard messages.isEmpty else {
                    fetcher.buffer.prepend([message])
                    break taking
                }
                message.destroy()
                throw error
            case .event(let event):
                messages.append(message)
                events.append(event)
                continue
            case .tombstone, .invalid:
                break
            }
            if holdsPartition(of: message) {
                fetcher.buffer.prepend([message])
                break taking
            }
            if case .invalid(let error) = kind {
                do {
                    try await skipInvalid(message, error)
                } catch {
                    fetcher.buffer.prepend(messages + [message])
                    throw error
                }
                // Closed while the dead-letter topic was written: the close has destroyed the
                // buffer; what was taken from it is not delivered.
                guard machine.isOpen else {
                    for message in messages { message.destroy() }
                    message.destroy()
                    return false
                }
                paused = userPaused
                message.destroy()
            } else {
                counters.tombstones += 1
                logTombstone(message)
                finish([message])
                message.destroy()
            }
        }
        guard !messages.isEmpty else { return false }
        lastEventTime = Date()
        if !seekPositions.isEmpty {
            for message in messages { seekPositions[TopicPartition(topic: message.topic, partition: message.partition)] = nil }
        }
        batch.fill(messages, events)
        return true
    }

    /// An invalid event: logged, counted, dead-lettered when there is a dead-letter topic,
    /// and its offset stored (unless the consumer closed meanwhile). Throws when the
    /// dead-letter topic did not store it; the message stays the caller's.
    func skipInvalid(_ message: FetchedMessage, _ error: WorkflowEventValidationError) async throws {
        counters.invalidEvents += 1
        metrics.invalidEvents.increment()
        logInvalidEvent(message, error)
        if configuration.deadLetterTopic != nil {
            try await deadLetter(message.record, kind: "invalid-event", reason: "\(error)")
            guard machine.isOpen else { return }
        }
        finish([message])
    }
}
