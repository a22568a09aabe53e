import Foundation
public import Logging
import Metrics
import Synchronization
import Tracing

/// Consumes workflow events from Kafka.
///
/// The actor owns one librdkafka consumer. Read events with a `for try await` loop over
/// ``events(topics:)`` (or ``messages(topics:)`` for their Kafka coordinates), with a
/// callback through ``consumeEvents(topics:timeout:_:)``, or in batches of raw
/// records with ``poll(timeout:)``; prefer ``withWorkflowEventConsumer(configuration:logger:isolation:_:)``,
/// which closes the consumer however its body ends.
///
/// Guarantees:
/// - An event's offset is stored for commit only once the loop body (or callback) that
///   received it has returned: a crash redelivers the event in hand, never skips it.
/// - An event that breaks the contract is logged with its topic, partition and offset,
///   counted, skipped, and its offset moves on.
/// - Cancelling the task that is reading commits what was processed, leaves the group (its
///   partitions move to another member at once) and destroys the handle.
/// - Reading pulls: nothing is taken from librdkafka faster than the loop consumes, beyond
///   one fetch batch and librdkafka's own bounded prefetch.
/// - No blocking librdkafka call runs on Swift's cooperative thread pool.
public actor WorkflowEventConsumer {
    /// The settings this consumer was made with.
    public nonisolated let configuration: Configuration
    let logger: Logger
    nonisolated let client: RDKafkaConsumerClient

    private enum Lifecycle { case open, closing, closed }
    private var lifecycle = Lifecycle.open
    private var closeWaiters: [CheckedContinuation<Void, Never>] = []

    private var subscription: [String]?
    private var buffer = RDKafkaMessageBuffer()
    private var fetchInFlight = false
    /// The next batch, taken (and validated) on the poll queue while the reader works
    /// through the buffer. At most one at a time.
    private var readAhead: Task<[RDKafkaMessage], Never>?
    private var fetchWaiters: [CheckedContinuation<Void, Never>] = []
    private var seenGeneration = 0
    private var subscribedAt = ContinuousClock.now
    /// When librdkafka was last asked for messages: its `max.poll.interval.ms` counts from
    /// it, and rebalance callbacks run only then.
    private var lastFetch = ContinuousClock.now
    /// When a reader last asked for a message (or a poll), and how many its batch had
    /// handed out then.
    private var lastRead = ContinuousClock.now
    private var lastHandedOut = 0
    /// How often librdkafka is asked while a reader is busy, so that a rebalance is not
    /// held up by a slow loop body.
    private static let serviceInterval = Duration.milliseconds(100)
    /// Whether the keep-alive paused the assignment while the reader was busy.
    private var pausedForKeepAlive = false
    private var keepAlive: Task<Void, Never>?

    /// Who reads from this consumer: one reader at a time, so that a commit never covers
    /// another reader's unfinished event.
    private var reading = ReadingState.idle
    /// Streams released by their iterating task (left with `break` or a thrown error, or
    /// dropped), from any thread: their event in hand goes back to the buffer, unstored.
    fileprivate let releasedReaders = ReleasedReaders()
    /// Next offsets of the records the last `poll` returned, stored at the next `poll`.
    private var polledOffsets: [TopicPartition: Int64] = [:]
    /// Positions set by `seek` until a record of that partition is delivered.
    private var seekPositions: [TopicPartition: Int64] = [:]
    var counters = ConsumerStatistics()
    let metrics: ConsumerMetrics
    private let listeners = RebalanceListeners()
    var lastEventTime: Date?
    /// Partitions paused by ``pause(_:)`` (kept where librdkafka's rebalance callback reads
    /// them), and the messages already fetched for them.
    private var userPaused: Set<TopicPartition> { client.context.state.withLock { $0.userPaused } }
    private var heldWhilePaused: [TopicPartition: [RDKafkaMessage]] = [:]

    private static let readerIDs = Atomic<Int>(0)

    /// The version of the librdkafka library this process uses, such as "2.0.2".
    public static var librdkafkaVersion: String { librdkafkaVersionText }

    /// Whether librdkafka stops fetching for up to a second once its queue is full (before
    /// 2.1), so that the consumer wakes its fetcher when the queue runs low.
    public static var wakesLibrdkafkaFetcher: Bool { librdkafkaVersionNumber < 0x0201_0000 }
    private static func makeReaderID() -> Int { readerIDs.add(1, ordering: .relaxed).newValue }

    /// Creates a consumer with the seed guide's settings and defaults.
    public init(
        bootstrapServers: String = "localhost:9092",
        groupID: String? = nil,
        autoOffsetReset: AutoOffsetReset = .earliest,
        enableAutoCommit: Bool = true,
        consumerTimeout: Duration = .milliseconds(1000),
        maxPollRecords: Int? = nil,
        logger: Logger = Logger(label: "workflow-events.consumer")
    ) throws {
        try self.init(
            configuration: Configuration(
                bootstrapServers: bootstrapServers, groupID: groupID, autoOffsetReset: autoOffsetReset,
                enableAutoCommit: enableAutoCommit, consumerTimeout: consumerTimeout, maxPollRecords: maxPollRecords),
            logger: logger)
    }

    /// Creates a consumer. No connection is made until ``subscribe(_:)``.
    ///
    /// - Throws: ``WorkflowEventsError`` with code `invalidConfiguration` when a setting or a
    ///   librdkafka property is rejected.
    public init(configuration: Configuration, logger: Logger = Logger(label: "workflow-events.consumer")) throws {
        var logger = logger
        if let group = configuration.groupID { logger[metadataKey: "kafka.group"] = "\(group)" }
        self.configuration = configuration
        self.logger = logger
        self.metrics = ConsumerMetrics(group: configuration.groupID)
        self.client = try RDKafkaConsumerClient(
            properties: configuration.librdkafkaProperties(), logger: logger, metrics: metrics, listeners: listeners)
    }

    deinit {
        if lifecycle != .closed {
            logger.info("a consumer was released without being closed; closing it in the background")
            if let taken = reading.batch?.close() {
                client.store(after: taken.store)
                for message in taken.destroy { message.destroy() }
            }
            buffer.destroyAll()
            for (_, messages) in heldWhilePaused { for message in messages { message.destroy() } }
            let client = self.client
            if let pending = readAhead {
                Task.detached {
                    for message in await pending.value { message.destroy() }
                    client.closeAndDestroyInBackground()
                }
            } else {
                client.closeAndDestroyInBackground()
            }
        }
    }

    // MARK: - Reading

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
        let reader = Self.makeReaderID()
        let watch = StreamCancellationWatch(consumer: self, reader: reader)
        let batch = ReaderBatch()
        return AsyncThrowingStream(unfolding: { [self] in
            defer { watch.check() }
            // Most events come from the batch in hand, without a call to the actor.
            while true {
                if let event = batch.nextEvent() { return event }
                guard try await self.refill(batch, reader: reader, topics: topics, idle: idleTimeout) else { return nil }
            }
        })
    }

    /// The same stream as ``events(topics:idleTimeout:)``, with each event's topic,
    /// partition, offset, key, headers and timestamp.
    public nonisolated func messages(
        topics: [String], idleTimeout: Duration? = nil
    ) -> AsyncThrowingStream<WorkflowEventMessage, any Error> {
        let reader = Self.makeReaderID()
        let watch = StreamCancellationWatch(consumer: self, reader: reader)
        let batch = ReaderBatch()
        return AsyncThrowingStream(unfolding: { [self] in
            defer { watch.check() }
            while true {
                if let message = batch.nextMessage(withCoordinates: true) { return message }
                guard try await self.refill(batch, reader: reader, topics: topics, idle: idleTimeout) else { return nil }
            }
        })
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
    /// follow the rules of ``consumeEvents(topics:timeout:_:)``.
    ///
    /// - Returns: How many events were passed to `handler`.
    @discardableResult
    nonisolated(nonsending) public func serve(
        topics: [String],
        _ handler: (WorkflowEvent) async throws -> Void
    ) async throws -> Int {
        try await handleEach(topics: topics, idle: nil, stop: serveStop, handler)
    }

    /// Ends ``serve(topics:_:)`` after the event in hand, from any thread. Called while no
    /// `serve` runs, it ends the next one at once; a later `serve` serves again.
    public nonisolated func stopServing() {
        serveStop.set()
        client.wakeUp()
    }

    private let serveStop = StopFlag()

    nonisolated(nonsending) private func handleEach(
        topics: [String], idle: Duration?, stop: StopFlag?, _ handler: (WorkflowEvent) async throws -> Void
    ) async throws -> Int {
        let reader = Self.makeReaderID()
        let batch = ReaderBatch()
        var handled = 0
        // The key, headers and topic cost allocations per event: read only when a span
        // needs them (a failure reads them from the message still held).
        let tracing = !(InstrumentationSystem.tracer is NoOpTracer)
        defer { if stop != nil { serveStop.clear() } }
        while stop?.isSet != true {
            // A cancelled task takes no further event from the batch: the refill closes.
            var next = Task.isCancelled ? nil : batch.nextMessage(withCoordinates: tracing)
            if next == nil, try await refill(batch, reader: reader, topics: topics, idle: idle, stop: stop) {
                next = batch.nextMessage(withCoordinates: tracing)
            }
            guard let message = next else { break }
            let started = ContinuousClock.now
            let outcome = await callWithRetries(
                configuration.retryPolicy,
                onRetry: { error, failures in
                    await recordHandlerRetry(error, message: batch.inHand()?.message ?? message, failures: failures)
                }
            ) {
                try await Self.withEventSpan(message, group: configuration.groupID) { try await handler(message.event) }
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
        lastRead = .now
        let limit = configuration.maxPollRecords ?? 500
        let deadline = ContinuousClock.now.advanced(by: timeout)
        var records: [TopicPartition: [ConsumerRecord]] = [:]
        // Next offsets of what this call returns: recorded only once it returns them.
        var taken: [TopicPartition: Int64] = [:]
        var count = 0
        polling: while true {
            while count < limit, let message = buffer.popFirst() {
                if message.isError {
                    guard let error = errorToThrow(message) else {
                        message.destroy()
                        continue
                    }
                    if count > 0 {
                        // The records before it are returned first; the error comes next time.
                        buffer.prepend([message])
                        break polling
                    }
                    message.destroy()
                    throw error
                }
                defer { message.destroy() }
                let record = message.record
                let partition = record.topicPartition
                taken[partition] = record.offset + 1
                records[partition, default: []].append(record)
                count += 1
            }
            if count > 0 || ContinuousClock.now >= deadline { break }
            if Task.isCancelled {
                await close()
                throw CancellationError()
            }
            try checkOpen("poll")
            try await fill(until: deadline, readAhead: .raw)
        }
        for (partition, next) in taken {
            seekPositions[partition] = nil
            polledOffsets[partition] = next
        }
        counters.eventsDelivered += count
        metrics.events.increment(by: count)
        if count > 0 { lastEventTime = Date() }
        return records
    }

    // MARK: - Subscription

    /// Subscribes to `topics`: with a group, the group assigns this member its share of their
    /// partitions; without one, every partition is read. Replaces an earlier subscription;
    /// the same topics again change nothing.
    ///
    /// - Throws: ``KafkaError`` when no bootstrap server answers within the configuration's
    ///   `connectionTimeout`, or (without a group) when a topic does not exist.
    public func subscribe(_ topics: [String]) async throws {
        try checkOpen("subscribe")
        guard !topics.isEmpty else {
            throw WorkflowEventsError(.invalidConfiguration, "subscribe needs at least one topic")
        }
        // The same topics again: the assignment and the positions stay as they are.
        if subscription == topics { return }
        try await checkConnection(for: "subscribe to \(topics)")
        try checkOpen("subscribe")
        if configuration.groupID != nil {
            try await client.subscribe(topics)
        } else {
            // Concrete start offsets, not librdkafka's logical beginning or end: a logical
            // one is looked up after the assignment, and that lookup can overtake a `seek`
            // made right after `subscribe`.
            let partitions = try await client.partitions(of: topics, timeout: configuration.connectionTimeout)
            var starts: [(TopicPartition, Int64)] = []
            for partition in partitions {
                let (low, high) = try await client.watermarks(partition, timeout: configuration.connectionTimeout)
                starts.append((partition, configuration.autoOffsetReset == .latest ? high : low))
            }
            try await client.assign(starts)
        }
        let kept = Set(topics)
        await absorbReadAhead()
        buffer.drop { !kept.contains($0.topic) }
        subscription = topics
        subscribedAt = .now
        if configuration.groupID != nil && keepAlive == nil && !reading.isProcessing { startKeepAlive() }
        logger.debug("subscribed", metadata: ["kafka.topics": "\(topics.joined(separator: ","))"])
    }

    /// The partitions assigned to this consumer now.
    public var assignment: Set<TopicPartition> { client.assignment }

    // MARK: - Offsets

    /// Commits the offsets of everything delivered so far and waits for the broker to
    /// confirm. Called from a loop body (or a `consumeEvents` handler), it includes the event
    /// in hand, which that body has processed; a loop left with `break` or a throw, or a
    /// stream released, holds no event.
    ///
    /// - Throws: ``WorkflowEventsError`` `groupRequired` without a `groupID`; ``KafkaError``
    ///   when the broker refuses.
    public func commit() async throws {
        try checkOpen("commit")
        try checkGroup("commit")
        reclaimReleasedReaders()
        reading.batch?.withOffsetsForCommit { client.store(after: $0) }
        storePolledOffsets()
        try await client.commit(nil)
    }

    /// Commits the given next-offsets (Kafka's convention: the offset of the next record to
    /// read) and waits for the broker to confirm.
    public func commit(_ offsets: [TopicPartition: Int64]) async throws {
        try checkOpen("commit")
        try checkGroup("commit")
        guard !offsets.isEmpty else { return }
        let entries = offsets.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        client.store(entries)
        try await client.commit(entries)
    }

    /// The committed next-offset of each partition given, nil where the group has none.
    public func committed(_ partitions: [TopicPartition]) async throws -> [TopicPartition: Int64] {
        try checkOpen("committed")
        try checkGroup("committed")
        return try await client.committed(partitions, timeout: configuration.connectionTimeout)
    }

    /// The end offset, committed offset and lag of each partition of `topics`, for this
    /// consumer's group; the consumer need not be subscribed, nor a member of the group.
    ///
    /// - Throws: ``WorkflowEventsError`` `groupRequired` without a `groupID`; ``KafkaError``
    ///   when a topic does not exist or the cluster does not answer within the
    ///   configuration's `connectionTimeout`.
    public func lag(topics: [String]) async throws -> [PartitionLag] {
        try checkOpen("lag")
        try checkGroup("lag")
        try await checkConnection(for: "lag of \(topics)")
        let partitions = try await client.partitions(of: topics, timeout: configuration.connectionTimeout)
        return try await lag(of: partitions)
    }

    /// The end offset, committed offset and lag of each partition assigned to this consumer.
    public func lag() async throws -> [PartitionLag] {
        try checkOpen("lag")
        try checkGroup("lag")
        return try await lag(of: client.assignment.sorted())
    }

    private func lag(of partitions: [TopicPartition]) async throws -> [PartitionLag] {
        let committed = try await client.committed(partitions, timeout: configuration.connectionTimeout)
        var result: [PartitionLag] = []
        result.reserveCapacity(partitions.count)
        for partition in partitions.sorted() {
            let (low, high) = try await client.watermarks(partition, timeout: configuration.connectionTimeout)
            result.append(
                PartitionLag(partition: partition, committedOffset: committed[partition], lowWatermark: low, endOffset: high))
        }
        return result
    }

    /// The names of the cluster's topics, Kafka's internal ones (`__consumer_offsets`...) left out.
    public func topics() async throws -> [String] {
        try checkOpen("topics")
        try await checkConnection(for: "list topics")
        return try await client.topicNames(timeout: configuration.connectionTimeout).filter { !$0.hasPrefix("__") }.sorted()
    }

    /// Makes `offset` the next record read from `partition`.
    ///
    /// Right after ``subscribe(_:)`` this waits, up to the configuration's
    /// `assignmentTimeout`, for the group to assign the partition.
    ///
    /// - Throws: ``WorkflowEventsError`` `partitionNotAssigned` when the group gives the
    ///   partition to another member or does not assign it in time.
    public func seek(_ partition: TopicPartition, to offset: Int64) async throws {
        try checkOpen("seek")
        try checkNotProcessing("seek")
        reclaimReleasedReaders()
        guard offset >= 0 else {
            throw WorkflowEventsError(.invalidConfiguration, "seek to \(offset) on \(partition): an offset is never negative")
        }
        let appliedAtAssignment = try await waitForAssignment(of: partition, pendingSeek: offset)
        if !appliedAtAssignment {
            // The seek owns the fetch path while librdkafka moves the position: a fetch of the
            // keep-alive meanwhile would take a message from the old position.
            while fetchInFlight { await withCheckedContinuation { fetchWaiters.append($0) } }
            await absorbReadAhead()
            fetchInFlight = true
            if let batch = reading.batch {
                // Events finished before the seek count; the one in hand, from before it, not.
                batch.withFinished { client.store(after: $0) }
                putBack(batch.cut(sought: partition))
            }
            buffer.drop { $0 == partition }
            for message in heldWhilePaused.removeValue(forKey: partition) ?? [] { message.destroy() }
            do {
                try await client.seek(partition, to: offset, timeout: configuration.connectionTimeout)
            } catch {
                fetchEnded()
                throw error
            }
            fetchEnded()
        }
        seekPositions[partition] = offset
        logger.debug("seek", metadata: Self.coordinates(partition.topic, partition.partition, offset))
    }

    /// The offset of the next record this consumer will deliver from `partition`.
    ///
    /// Before anything was read it is the committed offset, or else where the reset policy
    /// starts. Waits for the assignment as ``seek(_:to:)`` does.
    public func position(_ partition: TopicPartition) async throws -> Int64 {
        try checkOpen("position")
        try checkNotProcessing("ask for a position")
        reclaimReleasedReaders()
        _ = try await waitForAssignment(of: partition, pendingSeek: nil)
        await absorbReadAhead()
        if let offset = reading.batch?.firstWaitingOffset(of: partition) { return offset }
        if let offset = heldWhilePaused[partition]?.first?.offset { return offset }
        if let offset = buffer.firstOffset(of: partition) { return offset }
        if let offset = seekPositions[partition] { return offset }
        if let offset = try client.position(partition) { return offset }
        if configuration.groupID != nil,
            let offset = try await client.committed([partition], timeout: configuration.connectionTimeout)[partition]
        {
            return offset
        }
        let (low, high) = try await client.watermarks(partition, timeout: configuration.connectionTimeout)
        switch configuration.autoOffsetReset {
        case .earliest: return low
        case .latest: return high
        case .none:
            throw KafkaError(
                code: .autoOffsetReset, message: "\(partition) has no committed offset and autoOffsetReset is .none",
                operation: "position")
        }
    }

    // MARK: - Operating

    /// Assignment changes as they happen: assigned, revoked (delivered before the revoked
    /// partitions' offsets are committed and they are handed over) and lost. Each call
    /// gives a new stream; it ends when the consumer closes.
    public nonisolated func rebalanceEvents() -> AsyncStream<RebalanceEvent> {
        listeners.makeStream()
    }

    /// A cheap snapshot for a readiness probe: assigned partitions, the last event's time,
    /// the lag from librdkafka's statistics, the last error.
    public var health: ConsumerHealth {
        let (assignment, lag, lastError, member) = client.context.state.withLock {
            ($0.assignment, $0.lag, $0.lastError, $0.isGroupMember)
        }
        return ConsumerHealth(
            assignedPartitions: assignment, lastEventTime: lastEventTime,
            lagByPartition: lag.filter { assignment.contains($0.key) }, lastError: lastError, isClosed: lifecycle == .closed,
            isGroupMember: member && lifecycle != .closed)
    }

    /// Stops delivering events of these partitions until ``resume(_:)``; the consumer keeps
    /// its assignment and the group membership. Events already fetched for them wait.
    public func pause(_ partitions: [TopicPartition]) throws {
        try checkOpen("pause")
        try checkNotProcessing("pause")
        client.context.state.withLock { $0.userPaused.formUnion(partitions) }
        client.setPaused(true, partitions)
        // The reader's next events are chosen again, without the paused partitions.
        if let batch = reading.batch { putBack(batch.cut()) }
    }

    /// Delivers the events of these paused partitions again, from where they stopped.
    public func resume(_ partitions: [TopicPartition]) throws {
        try checkOpen("resume")
        try checkNotProcessing("resume")
        let resumed = client.context.state.withLock { state in partitions.filter { state.userPaused.remove($0) != nil } }
        var held: [RDKafkaMessage] = []
        for partition in resumed { held += heldWhilePaused.removeValue(forKey: partition) ?? [] }
        buffer.prepend(held)
        client.setPaused(false, partitions)
    }

    /// The partitions paused by ``pause(_:)``.
    public var pausedPartitions: Set<TopicPartition> { userPaused }

    // MARK: - Closing

    /// Whether ``close(timeout:)`` has finished.
    public var isClosed: Bool { lifecycle == .closed }

    /// Counts of what this consumer has seen.
    public var statistics: ConsumerStatistics {
        var snapshot = counters
        snapshot.bufferedMessages = buffer.count
        if let progress = reading.batch?.progress {
            snapshot.eventsDelivered += progress.uncounted
            snapshot.bufferedMessages += progress.waiting
        }
        (snapshot.rebalances, snapshot.commitFailures) = client.context.state.withLock { ($0.rebalances, $0.commitFailures) }
        snapshot.fetcherWakeUps = client.fetcherWakeUps
        return snapshot
    }

    /// Closes the consumer: with auto-commit, commits the offsets of processed events; leaves
    /// the group so that its partitions move at once; destroys the handle. Waits at most
    /// `timeout` (the configuration's `closeTimeout` when nil) for the group. Idempotent;
    /// every later call but `close` throws ``WorkflowEventsError`` `clientClosed`.
    public func close(timeout: Duration? = nil) async {
        switch lifecycle {
        case .closed:
            return
        case .closing:
            await withCheckedContinuation { closeWaiters.append($0) }
            return
        case .open:
            break
        }
        lifecycle = .closing
        keepAlive?.cancel()
        keepAlive = nil
        let started = ContinuousClock.now
        client.wakeUp()
        while fetchInFlight {
            await withCheckedContinuation { fetchWaiters.append($0) }
        }
        await absorbReadAhead()
        storePolledOffsets()
        // The reader's finished events are stored; what it holds was not finished: it is not
        // stored, and will be read again.
        if let batch = reading.batch { settleClosing(batch.close()) }
        setReading(.idle)
        buffer.destroyAll()
        for (_, messages) in heldWhilePaused { for message in messages { message.destroy() } }
        heldWhilePaused = [:]
        if let producer = deadLetterProducer {
            deadLetterProducer = nil
            await producer.close(timeout: .seconds(5))
        }
        await client.closeAndDestroy(timeout: timeout ?? configuration.closeTimeout)
        lifecycle = .closed
        listeners.finishAll()
        logger.debug("consumer closed", metadata: ["duration": "\(ContinuousClock.now - started)"])
        for waiter in closeWaiters { waiter.resume() }
        closeWaiters = []
    }

    // MARK: - Internals

    /// Succeeds once a bootstrap server answers; else throws a ``KafkaError`` naming the
    /// servers and the time waited.
    private func checkConnection(for operation: String) async throws {
        do {
            try await client.checkConnection(timeout: configuration.connectionTimeout)
        } catch let error as KafkaError {
            throw KafkaError(
                code: error.code,
                message: "no bootstrap server of '\(configuration.bootstrapServers)' answered within \(configuration.connectionTimeout): \(error.message)",
                operation: operation, isFatal: false, isRetriable: true)
        }
    }

    func checkOpen(_ operation: String) throws {
        guard lifecycle == .open else {
            throw WorkflowEventsError(.clientClosed, "cannot \(operation): the consumer is closed; create a new one")
        }
    }

    /// Refuses a second way of reading while `process` runs.
    private func checkNotProcessing(_ operation: String) throws {
        if reading.isProcessing {
            throw WorkflowEventsError(
                .readerBusy, "cannot \(operation) while process(topics:) reads from this consumer; use another consumer")
        }
    }

    /// Refuses a reader while another one reads (or `process` runs).
    private func checkNoReader(_ operation: String, except reader: Int? = nil) throws {
        switch reading {
        case .idle:
            return
        case .processing:
            try checkNotProcessing(operation)
        case .reader(let id, _):
            guard id != reader else { return }
            throw WorkflowEventsError(
                .readerBusy,
                "cannot \(operation): another reader (a stream or a consumeEvents/serve loop) is reading from this consumer; end its loop and release the stream first, or use a second consumer")
        }
    }

    /// Makes `reader` the consumer's reader; records of an earlier `poll` count as processed.
    private func claim(reader: Int, batch: ReaderBatch) throws {
        // Every batch passes here: the reader already reading goes on without a look at the
        // released ones (a released stream never asks again).
        if case .reader(reader, _) = reading { return }
        reclaimReleasedReaders()
        try checkNoReader("read events", except: reader)
        storePolledOffsets()
        setReading(.reader(id: reader, batch: batch))
    }

    /// Who reads; librdkafka's rebalance callback sees the reader's batch.
    private func setReading(_ state: ReadingState) {
        reading = state
        client.context.state.withLock { $0.readerBatch = state.batch }
    }

    /// Ends `reader`'s turn. Its event in hand was not finished: it goes back to the front
    /// of the buffer, unstored, for the next read.
    private func release(reader: Int) {
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
    private func settle(_ taken: ReaderBatch.Taken) {
        client.store(after: taken.store)
        for message in taken.destroy { message.destroy() }
        putBack(taken.giveBack)
        counters.eventsDelivered += taken.delivered
        metrics.events.increment(by: taken.delivered)
    }

    private func settleClosing(_ taken: ReaderBatch.Taken) {
        client.store(after: taken.store)
        for message in taken.destroy { message.destroy() }
        counters.eventsDelivered += taken.delivered
    }

    /// Messages given back by a reader, in front of the buffer; those of partitions revoked
    /// meanwhile are dropped (their next owner reads them).
    private func putBack(_ messages: [RDKafkaMessage]) {
        guard !messages.isEmpty else { return }
        guard configuration.groupID != nil else { return buffer.prepend(messages) }
        let assignment = client.assignment
        var kept: [RDKafkaMessage] = []
        kept.reserveCapacity(messages.count)
        for message in messages {
            if message.isError || assignment.contains(TopicPartition(topic: message.topic, partition: message.partition)) {
                kept.append(message)
            } else {
                message.destroy()
            }
        }
        buffer.prepend(kept)
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
                "cannot process while partitions \(userPaused.sorted().map(\.description).joined(separator: ", ")) are paused with pause(_:): resume them first (process pauses and resumes partitions by itself)")
        }
        setReading(.processing)
    }

    /// Stops what served an earlier reader (the keep-alive, its pause, a fetch or a batch
    /// read ahead) and hands over, in order, what it fetched and did not deliver.
    func takeOverReading() async throws -> [RDKafkaMessage] {
        keepAlive?.cancel()
        keepAlive = nil
        while fetchInFlight { await withCheckedContinuation { fetchWaiters.append($0) } }
        await absorbReadAhead()
        try checkOpen("process")
        if pausedForKeepAlive {
            pausedForKeepAlive = false
            client.setPaused(false, client.assignment.sorted())
        }
        // Records of an earlier poll count as processed, as at the next poll.
        storePolledOffsets()
        return buffer.removeAll()
    }

    /// `process` has ended.
    func endReadingForProcess() {
        if reading.isProcessing { setReading(.idle) }
    }

    private func checkGroup(_ operation: String) throws {
        guard configuration.groupID != nil else {
            throw WorkflowEventsError(
                .groupRequired, "cannot \(operation) without a consumer group: set groupID in the configuration")
        }
    }

    private func storePolledOffsets() {
        guard !polledOffsets.isEmpty else { return }
        client.store(polledOffsets.map { ($0.key, $0.value) })
        polledOffsets = [:]
    }

    /// A handler failed for good: logged and counted, and dead-lettered when there is a
    /// dead-letter topic. Throws when the dead-letter topic did not store it (the event is
    /// then not stored either, and is read again).
    private func recordHandlerFailure(
        _ error: any Error, held: (message: WorkflowEventMessage, record: ConsumerRecord)?, message: WorkflowEventMessage
    ) async throws {
        let message = held?.message ?? message
        counters.handlerFailures += 1
        metrics.handlerFailures.increment()
        let deadLettering = configuration.deadLetterTopic != nil
        logger.info(
            deadLettering
                ? "event handler failed; sending the event to the dead-letter topic"
                : "event handler failed; continuing with the next event",
            metadata: Self.coordinates(message.topic, message.partition, message.offset, event: message.event)
                .merging(["error": "\(error)"]) { $1 })
        guard deadLettering, let held else { return }
        try await deadLetter(held.record, kind: "handler-failed", reason: "\(error)")
    }

    private func recordHandlerRetry(_ error: any Error, message: WorkflowEventMessage, failures: Int) {
        counters.handlerRetries += 1
        logger.debug(
            "event handler failed; retrying",
            metadata: Self.coordinates(message.topic, message.partition, message.offset, event: message.event)
                .merging(["error": "\(error)", "attempt": "\(failures)"]) { $1 })
    }

    /// Log metadata naming where a message came from, and the event when there is one.
    static func coordinates(
        _ topic: String, _ partition: Int32, _ offset: Int64, event: WorkflowEvent? = nil
    ) -> Logger.Metadata {
        var metadata: Logger.Metadata = ["kafka.topic": "\(topic)", "kafka.partition": "\(partition)", "kafka.offset": "\(offset)"]
        if let event { metadata["event.id"] = "\(event.eventID)" }
        return metadata
    }

    // MARK: Dead letters

    private var deadLetterProducer: WorkflowEventProducer?

    /// Writes `record` unchanged (value, key, headers) to the dead-letter topic with headers
    /// saying why, where from and when, and waits until it is stored.
    func deadLetter(_ record: ConsumerRecord, kind: String, reason: String) async throws {
        guard let topic = configuration.deadLetterTopic else { return }
        let producer: WorkflowEventProducer
        if let existing = deadLetterProducer {
            producer = existing
        } else {
            producer = try WorkflowEventProducer(
                configuration: .init(
                    bootstrapServers: configuration.bootstrapServers, clientID: configuration.clientID + ".dead-letters",
                    // Any message the consumer could fetch must fit; the broker's limit for
                    // the dead-letter topic still applies.
                    properties: configuration.properties.filter { Self.isConnectionProperty($0.key) }
                        .merging(["message.max.bytes": String(64 << 20)]) { mine, _ in mine }),
                logger: logger)
            deadLetterProducer = producer
        }
        let headers =
            record.headers + [
                KafkaHeader(name: DeadLetterHeader.kind, string: kind),
                KafkaHeader(name: DeadLetterHeader.reason, string: reason),
                KafkaHeader(name: DeadLetterHeader.topic, string: record.topic),
                KafkaHeader(name: DeadLetterHeader.partition, string: String(record.partition)),
                KafkaHeader(name: DeadLetterHeader.offset, string: String(record.offset)),
                KafkaHeader(name: DeadLetterHeader.time, string: formatRFC3339(Date())),
            ]
        do {
            _ = try await producer.sendRecord(value: record.value, key: record.key, headers: headers, to: topic)
        } catch {
            throw KafkaError(
                code: (error as? KafkaError)?.code ?? .state,
                message: "\(record.topic)[\(record.partition)]@\(record.offset) was not stored in dead-letter topic '\(topic)', so it stays unprocessed: \(error)",
                operation: "dead-letter a message", isRetriable: true)
        }
        counters.deadLettered += 1
        metrics.deadLettered.increment()
        logger.info(
            "sent a message to the dead-letter topic",
            metadata: Self.coordinates(record.topic, record.partition, record.offset)
                .merging(["dead_letter.topic": "\(topic)", "dead_letter.kind": "\(kind)"]) { $1 })
    }

    /// Properties a dead-letter producer shares with the consumer: how to reach and
    /// authenticate to the cluster.
    private static func isConnectionProperty(_ name: String) -> Bool {
        ["security.", "sasl.", "ssl.", "socket.", "broker.", "client.dns", "api.version"].contains { name.hasPrefix($0) }
    }

    /// The headers a dead-lettered message carries besides its own.
    public enum DeadLetterHeader {
        /// `invalid-event` (not a valid event) or `handler-failed` (the handler kept throwing).
        public static let kind = "dead-letter.kind"
        /// Why, in words: the validation error or the handler's error.
        public static let reason = "dead-letter.reason"
        /// The topic the message was read from.
        public static let topic = "dead-letter.topic"
        /// Its partition.
        public static let partition = "dead-letter.partition"
        /// Its offset.
        public static let offset = "dead-letter.offset"
        /// When it was dead-lettered, RFC 3339 in UTC.
        public static let time = "dead-letter.time"
    }

    /// Whether a group member is still waiting for its first assignment (at most the
    /// configuration's `assignmentTimeout`): idle timeouts count from the assignment, not
    /// from the join, which takes seconds.
    private var isAwaitingFirstAssignment: Bool {
        configuration.groupID != nil && seenGeneration == 0 && client.assignment.isEmpty
            && ContinuousClock.now < subscribedAt.advanced(by: configuration.assignmentTimeout)
    }

    /// Hands `reader` its next batch of valid events, once everything it was handed has
    /// finished (their offsets are stored here). Returns false when no event has come for
    /// `idle` (counted from the first assignment for a new group member), the consumer is
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

    private func readBatch(
        _ batch: ReaderBatch, reader: Int, topics: [String], idle: Duration?, stop: StopFlag?
    ) async throws -> Bool {
        if case .reader(reader, let current) = reading, current === batch { settle(batch.takeFinished()) }
        if Task.isCancelled {
            await close()
            return false
        }
        guard lifecycle == .open else { return false }
        try claim(reader: reader, batch: batch)
        if subscription != topics {
            try await subscribe(topics)
        }
        lastRead = .now
        if configuration.groupID != nil && !buffer.isEmpty && lastRead - lastFetch >= Self.serviceInterval {
            await serviceWhileBusy(pauseAfter: .seconds(Int64.max))
        }
        var deadline = idle.map { ContinuousClock.now.advanced(by: $0) }
        var awaitingAssignment = idle != nil && isAwaitingFirstAssignment
        while true {
            if let error = client.takeErrorToThrow() { throw error }
            if try await triage(into: batch) { return true }
            if awaitingAssignment, !isAwaitingFirstAssignment, let idle {
                awaitingAssignment = false
                deadline = ContinuousClock.now.advanced(by: idle)
            }
            if !awaitingAssignment, let deadline, ContinuousClock.now >= deadline { return false }
            if stop?.isSet == true { return false }
            if Task.isCancelled {
                await close()
                return false
            }
            guard lifecycle == .open else { return false }
            try await fill(until: awaitingAssignment ? nil : deadline, readAhead: .decoded)
        }
    }

    /// Moves the buffer's valid events into `batch`, up to `fetchBatchSize`, and returns
    /// whether there is one. On the way, a tombstone is skipped and an invalid event skipped
    /// or dead-lettered, its offset stored, but only while no event of its partition waits
    /// in the batch (the batch ends before it otherwise): an offset is never stored past an
    /// unfinished event. An error the caller must act on ends the batch, and is thrown once
    /// the events before it are done.
    private func triage(into batch: ReaderBatch) async throws -> Bool {
        var messages: [RDKafkaMessage] = []
        var events: [WorkflowEvent] = []
        let limit = configuration.fetchBatchSize
        messages.reserveCapacity(min(limit, buffer.count))
        events.reserveCapacity(min(limit, buffer.count))
        func holdsPartition(of message: RDKafkaMessage) -> Bool {
            let topic = message.topic
            return messages.contains { $0.partition == message.partition && $0.topic == topic }
        }
        taking: while messages.count < limit, let message = buffer.popFirst() {
            if !userPaused.isEmpty, !message.isError {
                let partition = TopicPartition(topic: message.topic, partition: message.partition)
                if userPaused.contains(partition) {
                    heldWhilePaused[partition, default: []].append(message)
                    continue
                }
            }
            if message.isError {
                guard let error = errorToThrow(message) else {
                    message.destroy()
                    continue
                }
                guard messages.isEmpty else {
                    buffer.prepend([message])
                    break taking
                }
                message.destroy()
                throw error
            }
            let decoded: Result<WorkflowEvent, WorkflowEventValidationError>? =
                message.isTombstone
                ? nil
                : message.decoded
                    ?? message.withValue { bytes in
                        Result { () throws(WorkflowEventValidationError) in try WorkflowEvent.decode(bytes) }
                    }
            if case .success(let event) = decoded {
                messages.append(message)
                events.append(event)
                continue
            }
            if holdsPartition(of: message) {
                buffer.prepend([message])
                break taking
            }
            if case .failure(let error) = decoded {
                do {
                    try await skipInvalid(message, error)
                } catch {
                    buffer.prepend(messages + [message])
                    throw error
                }
                // Closed while the dead-letter topic was written: the close has destroyed the
                // buffer; what was taken from it is not delivered.
                guard lifecycle == .open else {
                    for message in messages { message.destroy() }
                    message.destroy()
                    return false
                }
                message.destroy()
            } else {
                counters.tombstones += 1
                logger.debug(
                    "skipped a tombstone (null value)",
                    metadata: Self.coordinates(message.topic, message.partition, message.offset))
                client.storeOffset(after: message)
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
    private func skipInvalid(_ message: RDKafkaMessage, _ error: WorkflowEventValidationError) async throws {
        counters.invalidEvents += 1
        metrics.invalidEvents.increment()
        logger.info(
            configuration.deadLetterTopic == nil
                ? "skipped an invalid event" : "an invalid event goes to the dead-letter topic",
            metadata: Self.coordinates(message.topic, message.partition, message.offset)
                .merging(["reason": "\(error)"]) { $1 })
        if configuration.deadLetterTopic != nil {
            try await deadLetter(message.record, kind: "invalid-event", reason: "\(error)")
            guard lifecycle == .open else { return }
        }
        client.storeOffset(after: message)
    }

    /// Consumer errors the caller must act on; the others are transient.
    private static let errorsToThrow: Set<KafkaError.Code> = [
        .fatal, .autoOffsetReset, .topicAuthorizationFailed, .groupAuthorizationFailed,
    ]

    /// Consumer errors that librdkafka hands over as messages: the ones the caller must act
    /// on are thrown, the rest are logged while librdkafka retries.
    nonisolated func handleErrorMessage(_ message: RDKafkaMessage) throws {
        if let error = errorToThrow(message) { throw error }
    }

    /// The error a message carries when the caller must act on it; other errors are logged.
    nonisolated func errorToThrow(_ message: RDKafkaMessage) -> KafkaError? {
        guard let error = message.error(operation: "consume \(message.topic)[\(message.partition)]") else { return nil }
        if error.isFatal || Self.errorsToThrow.contains(error.code) { return error }
        logger.info("Kafka reported a consumer error; librdkafka retries", metadata: ["error": "\(error)"])
        return nil
    }

    /// What a fill leaves running for the next one: nothing, a batch taken ahead, or a
    /// batch taken and validated ahead.
    enum ReadAhead { case none, raw, decoded }

    /// Waits until librdkafka has messages (or the deadline, or a wake-up) and moves them
    /// into the buffer. One fetch runs at a time; other callers wait for it. With
    /// `readAhead`, the next batch is then taken on the poll queue while the reader works
    /// through this one.
    private func fill(until deadline: ContinuousClock.Instant?, readAhead mode: ReadAhead = .none) async throws {
        if fetchInFlight {
            await withCheckedContinuation { fetchWaiters.append($0) }
            return
        }
        if pausedForKeepAlive {
            pausedForKeepAlive = false
            client.setPaused(false, client.assignment.subtracting(userPaused).sorted())
        }
        let maximum = configuration.fetchBatchSize
        lastFetch = .now
        var batch = await takeReadAhead()
        if batch.isEmpty { batch = client.fetchAvailable(maximum: maximum) }
        if batch.isEmpty {
            var wait = Duration.seconds(1)
            if let deadline { wait = min(wait, max(.zero, deadline - ContinuousClock.now)) }
            fetchInFlight = true
            let client = self.client
            batch = await withTaskCancellationHandler {
                await client.fetch(timeout: wait, maximum: maximum)
            } onCancel: {
                client.wakeUp()
            }
            fetchEnded()
        }
        buffer.append(batch)
        dropRevokedPartitions()
        if mode != .none && !batch.isEmpty && lifecycle == .open {
            let client = self.client
            let decode = mode == .decoded
            readAhead = Task.detached { await client.fetchAhead(maximum: maximum, decode: decode) }
        }
    }

    /// The batch taken ahead, if any (waiting for it to arrive).
    private func takeReadAhead() async -> [RDKafkaMessage] {
        guard let pending = readAhead else { return [] }
        readAhead = nil
        fetchInFlight = true
        let batch = await pending.value
        lastFetch = .now
        fetchEnded()
        return batch
    }

    /// Moves a batch taken ahead into the buffer: before the buffer is searched or cut.
    private func absorbReadAhead() async {
        guard readAhead != nil, !fetchInFlight else { return }
        buffer.append(await takeReadAhead())
        dropRevokedPartitions()
    }

    private func fetchEnded() {
        fetchInFlight = false
        lastFetch = .now
        for waiter in fetchWaiters { waiter.resume() }
        fetchWaiters = []
    }

    /// librdkafka runs rebalance callbacks only inside a consume call, and leaves the group
    /// when it is not asked for messages for `max.poll.interval.ms`. A loop body that is
    /// slow but alive must neither hold up a rebalance nor cost the member its partitions:
    /// while the reader is busy, librdkafka is asked every 100 ms (taking at most one
    /// message), and after half of `max.poll.interval.ms` the assignment is paused (which
    /// drops librdkafka's prefetched messages, bounding memory) while the polling goes on.
    /// The next read resumes fetching where it stopped.
    private func startKeepAlive() {
        let pauseAfter = Self.maxPollInterval(configuration.properties) / 2
        keepAlive = Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: Self.serviceInterval)
                guard let self else { return }
                await self.serviceWhileBusy(pauseAfter: pauseAfter)
            }
        }
    }

    private static func maxPollInterval(_ properties: [String: String]) -> Duration {
        let milliseconds = properties["max.poll.interval.ms"].flatMap { Int64($0) } ?? 300_000
        return .milliseconds(max(1, milliseconds))
    }

    /// Asks librdkafka for at most one message if it has not been asked for 100 ms, which
    /// serves its callbacks; pauses the assignment when the reader has been busy for
    /// `pauseAfter`.
    private func serviceWhileBusy(pauseAfter: Duration) async {
        guard lifecycle == .open else { return }
        // The events the reader finished reach librdkafka's auto-commit within this interval,
        // also while the reader is still working through its batch.
        reading.batch?.withFinished { client.store(after: $0) }
        guard subscription != nil, !fetchInFlight else { return }
        // A batch taken ahead came from librdkafka before anything taken now.
        await absorbReadAhead()
        guard lifecycle == .open, !fetchInFlight else { return }
        let now = ContinuousClock.now
        // A reader that took an event from its batch since the last look is not busy.
        if let handedOut = reading.batch?.progress.handedOut, handedOut != lastHandedOut {
            lastHandedOut = handedOut
            lastRead = now
        }
        guard now - lastFetch >= Self.serviceInterval else { return }
        if now - lastRead >= pauseAfter {
            if !pausedForKeepAlive {
                logger.debug("the reader is busy: fetching paused, group membership kept alive")
            }
            // Again each time: a rebalance meanwhile may have assigned new partitions.
            pausedForKeepAlive = true
            client.setPaused(true, client.assignment.sorted())
        }
        lastFetch = now
        buffer.append(client.fetchAvailable(maximum: 1))
        dropRevokedPartitions()
    }

    /// After a rebalance, messages of partitions this member no longer owns are dropped:
    /// their new owner reads them from the committed offset.
    private func dropRevokedPartitions() {
        guard configuration.groupID != nil else { return }
        let (generation, assignment) = client.context.state.withLock { ($0.generation, $0.assignment) }
        guard generation != seenGeneration else { return }
        seenGeneration = generation
        buffer.drop { !assignment.contains($0) }
        for partition in heldWhilePaused.keys where !assignment.contains(partition) {
            for message in heldWhilePaused.removeValue(forKey: partition) ?? [] { message.destroy() }
        }
    }

    /// Polls until `partition` is assigned. Returns whether a pending seek was applied as
    /// the partition's start offset by the assignment itself.
    private func waitForAssignment(of partition: TopicPartition, pendingSeek: Int64?) async throws -> Bool {
        if subscription == nil {
            throw WorkflowEventsError(
                .partitionNotAssigned, "\(partition) is not assigned: call subscribe(_:) before seek or position")
        }
        let deadline = ContinuousClock.now.advanced(by: configuration.assignmentTimeout)
        var registered = false
        while true {
            let (isAssigned, assignment, stillPending) = client.context.state.withLock { state in
                (state.assignment.contains(partition), state.assignment, state.pendingSeeks[partition] != nil)
            }
            if isAssigned {
                if registered {
                    if stillPending {
                        client.context.state.withLock { $0.pendingSeeks[partition] = nil }
                        return false
                    }
                    return true
                }
                return false
            }
            if !assignment.isEmpty {
                // The group has given this member its share, and this partition is not in it.
                clearPendingSeek(partition, registered)
                let owned = assignment.filter { $0.topic == partition.topic }.map(\.partition).sorted()
                throw WorkflowEventsError(
                    .partitionNotAssigned,
                    "\(partition) is assigned to another member of group '\(configuration.groupID ?? "")'; this consumer has partitions \(owned) of '\(partition.topic)'")
            }
            if ContinuousClock.now >= deadline {
                clearPendingSeek(partition, registered)
                throw WorkflowEventsError(
                    .partitionNotAssigned,
                    "\(partition) was not assigned to this consumer within \(configuration.assignmentTimeout)")
            }
            if let pendingSeek, !registered {
                client.context.state.withLock { $0.pendingSeeks[partition] = pendingSeek }
                registered = true
            }
            try checkOpen("wait for the assignment of \(partition)")
            try await fill(until: min(deadline, ContinuousClock.now.advanced(by: .milliseconds(200))))
            if let error = client.takeErrorToThrow() { throw error }
        }
    }

    private func clearPendingSeek(_ partition: TopicPartition, _ registered: Bool) {
        if registered { client.context.state.withLock { $0.pendingSeeks[partition] = nil } }
    }
}

/// `AsyncThrowingStream(unfolding:)` ends an iteration whose task is cancelled without
/// calling its closure again, and releases the closure: this watch, captured by the
/// closure, sees that release and closes the consumer. The release usually happens on the
/// cancelled task itself; but when the cancellation lands just as the closure returns an
/// event, the stream's cancellation handler releases it on the cancelling task. So the
/// closure also records, after each element, whether its task was cancelled by then.
/// Released with no cancellation seen (a `break`, a thrown error, a dropped stream), it
/// hands the reader's turn back, so that its event in hand is read again.
private final class StreamCancellationWatch: Sendable {
    let consumer: WorkflowEventConsumer
    let reader: Int
    private let sawCancellation = Atomic<Bool>(false)

    init(consumer: WorkflowEventConsumer, reader: Int) {
        self.consumer = consumer
        self.reader = reader
    }

    /// Called by the stream's closure before it returns an element.
    func check() {
        if Task.isCancelled { sawCancellation.store(true, ordering: .releasing) }
    }

    deinit {
        // Cancelled: the consumer closes, and the event in hand is not stored (the loop body
        // may have ended because of the cancellation, by a throw the stream cannot see).
        // Released otherwise (a `break`, a thrown error, a dropped stream): the reader lets
        // go of the consumer, and its event in hand is delivered again by the next read.
        if Task.isCancelled || sawCancellation.load(ordering: .acquiring) {
            let consumer = consumer
            Task { await consumer.close() }
        } else {
            consumer.releasedReaders.insert(reader)
        }
    }
}

/// Runs `body` with a new consumer and closes it however `body` ends: returning, throwing or
/// being cancelled (the seed's `with WorkflowEventConsumer(...) as consumer:`).
public func withWorkflowEventConsumer<Result>(
    configuration: WorkflowEventConsumer.Configuration,
    logger: Logger = Logger(label: "workflow-events.consumer"),
    isolation: isolated (any Actor)? = #isolation,
    _ body: (WorkflowEventConsumer) async throws -> sending Result
) async throws -> sending Result {
    let consumer = try WorkflowEventConsumer(configuration: configuration, logger: logger)
    let result: Result
    do {
        result = try await body(consumer)
    } catch {
        await consumer.close()
        throw error
    }
    await consumer.close()
    return result
}

/// Runs `body` with a new consumer made from the seed guide's settings, and closes it
/// however `body` ends.
public func withWorkflowEventConsumer<Result>(
    bootstrapServers: String = "localhost:9092",
    groupID: String? = nil,
    autoOffsetReset: WorkflowEventConsumer.AutoOffsetReset = .earliest,
    enableAutoCommit: Bool = true,
    consumerTimeout: Duration = .milliseconds(1000),
    maxPollRecords: Int? = nil,
    logger: Logger = Logger(label: "workflow-events.consumer"),
    isolation: isolated (any Actor)? = #isolation,
    _ body: (WorkflowEventConsumer) async throws -> sending Result
) async throws -> sending Result {
    try await withWorkflowEventConsumer(
        configuration: .init(
            bootstrapServers: bootstrapServers, groupID: groupID, autoOffsetReset: autoOffsetReset,
            enableAutoCommit: enableAutoCommit, consumerTimeout: consumerTimeout, maxPollRecords: maxPollRecords),
        logger: logger, body)
}
