import Foundation
public import Logging
import Metrics
import Synchronization
import Tracing

/// Consumes workflow events from Kafka.
///
/// The actor owns one librdkafka consumer. Read events with a `for try await` loop over
/// ``events(topics:idleTimeout:)`` (or ``messages(topics:idleTimeout:)`` for their Kafka coordinates), with a
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
    nonisolated let client: any ConsumerClient
    /// What the client reports to, and the state its rebalances share with the consumer.
    nonisolated let context: ConsumerClientContext

    /// The lifecycle (see ``ConsumerStateMachine``).
    var machine = ConsumerStateMachine<CheckedContinuation<Void, Never>>()
    /// What was taken from librdkafka and not handed to a reader, and the fetch path.
    let fetcher: Fetcher

    /// What this consumer reads: the topics of `subscribe`, or the partitions of `assign`.
    var subscription: Subscription?
    var subscribedAt: ContinuousClock.Instant
    /// When a reader last asked for a message (or a poll), and how many its batch had
    /// handed out then.
    var lastRead: ContinuousClock.Instant
    var lastHandedOut = 0
    /// How often librdkafka is asked while a reader is busy, so that a rebalance is not
    /// held up by a slow loop body.
    static let serviceInterval = Duration.milliseconds(100)
    var keepAlive: Task<Void, Never>?

    /// Who reads from this consumer: one reader at a time, so that a commit never covers
    /// another reader's unfinished event.
    var reading = ReadingState.idle
    /// Streams released by their iterating task (left with `break` or a thrown error, or
    /// dropped), from any thread: their event in hand goes back to the buffer, unstored.
    let releasedReaders = ReleasedReaders()
    /// Positions set by `seek` until a record of that partition is delivered.
    var seekPositions: [TopicPartition: Int64] = [:]
    var counters = ConsumerStatistics()
    let metrics: ConsumerMetrics
    /// What the timers run on.
    nonisolated let clock: ConsumerClock
    let listeners = RebalanceListeners()
    var lastEventTime: Date?
    /// Partitions paused by ``pause(_:)``, kept where librdkafka's rebalance callback reads
    /// them; the fetcher holds the messages already fetched for them.
    var userPaused: Set<TopicPartition> { context.state.withLock { $0.userPaused } }
    /// Set by `stopServing()`, consumed by the `serve` that sees it.
    let serveStop = StopFlag()
    /// Writes to the dead-letter topic; made on first need.
    var deadLetterProducer: WorkflowEventProducer?

    static let readerIDs = Atomic<Int>(0)

    /// The version of the librdkafka library this process uses, such as "2.0.2".
    public static var librdkafkaVersion: String { librdkafkaVersionText }

    /// Whether librdkafka stops fetching for up to a second once its queue is full (before
    /// 2.1), so that the consumer wakes its fetcher when the queue runs low.
    public static var wakesLibrdkafkaFetcher: Bool { librdkafkaVersionNumber < 0x0201_0000 }
    static func makeReaderID() -> Int { readerIDs.add(1, ordering: .relaxed).newValue }

    /// Creates a consumer with the seed guide's settings and defaults, and librdkafka
    /// `properties` (such as TLS and SASL settings).
    public init(
        bootstrapServers: String = "localhost:9092",
        groupID: String? = nil,
        autoOffsetReset: AutoOffsetReset = .earliest,
        enableAutoCommit: Bool = true,
        consumerTimeout: Duration = .milliseconds(1000),
        maxPollRecords: Int? = nil,
        properties: [String: String] = [:],
        logger: Logger = Logger(label: "workflow-events.consumer")
    ) throws {
        try self.init(
            configuration: Configuration(
                bootstrapServers: bootstrapServers, groupID: groupID, autoOffsetReset: autoOffsetReset,
                enableAutoCommit: enableAutoCommit, consumerTimeout: consumerTimeout, maxPollRecords: maxPollRecords,
                properties: properties),
            logger: logger)
    }

    /// Creates a consumer. No connection is made until ``subscribe(_:)``.
    ///
    /// - Throws: ``WorkflowEventsError`` with code `invalidConfiguration` when a setting or a
    ///   librdkafka property is rejected.
    public init(configuration: Configuration, logger: Logger = Logger(label: "workflow-events.consumer")) throws {
        try self.init(configuration: configuration, logger: logger) { context in
            try RDKafkaConsumerClient(properties: configuration.librdkafkaProperties(), events: context)
        }
    }

    /// Creates a consumer over the client `makeClient` makes (the tests' in-memory one),
    /// its timers on `clock`.
    init(
        configuration: Configuration, logger: Logger, clock: ConsumerClock = .continuous,
        makeClient: (ConsumerClientContext) throws -> any ConsumerClient
    ) throws {
        self.clock = clock
        let now = clock.now()
        (subscribedAt, lastRead) = (now, now)
        var logger = logger
        if let group = configuration.groupID { logger[metadataKey: "kafka.group"] = "\(group)" }
        self.configuration = configuration
        self.logger = logger
        self.metrics = ConsumerMetrics(group: configuration.groupID)
        let context = ConsumerClientContext(logger: logger, metrics: metrics, listeners: listeners)
        self.context = context
        let client = try makeClient(context)
        self.client = client
        self.fetcher = Fetcher(
            client: client, clock: clock, context: context, batchSize: configuration.fetchBatchSize,
            inGroup: configuration.groupID != nil)
    }

    /// Runs on the actor: the fetcher and the reader's batch are its state.
    isolated deinit {
        if !machine.isClosed {
            logger.info("a consumer was released without being closed; closing it in the background")
            if let taken = reading.batch?.close() {
                finish(lastOffsets: taken.store)
                for message in taken.messages[taken.destroyed] { message.destroy() }
            }
            let client = self.client
            fetcher.destroyAll { client.closeAndDestroyInBackground() }
        }
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
        // One subscription at a time: a second call made meanwhile waits, then finds the
        // same topics subscribed (two assignments of the same partitions would reset their
        // positions, and race librdkafka's teardown at close).
        while !machine.beginSubscribing() {
            await withCheckedContinuation { machine.waitForSubscription($0) }
        }
        defer { for waiter in machine.endSubscribing() { waiter.resume() } }
        try checkOpen("subscribe")
        // The same topics again: the assignment and the positions stay as they are.
        if subscription?.serves(topics) == true { return }
        if case .partitions(let assigned) = subscription {
            throw WorkflowEventsError(
                .invalidConfiguration,
                "cannot read \(topics): this consumer reads the partitions given to assign(_:) (\(assigned.sorted().map(\.description).joined(separator: ", "))); call unsubscribe() first"
            )
        }
        try await checkConnection(for: "subscribe to \(topics)")
        try checkOpen("subscribe")
        if configuration.groupID != nil {
            try await client.subscribe(topics)
        } else {
            // Every partition, each where the reset policy starts it (no group: no commit).
            let partitions = try await client.partitions(of: topics, timeout: configuration.connectionTimeout)
            var starts: [(TopicPartition, Int64)] = []
            for partition in partitions {
                starts.append((partition, try await resetOffset(of: partition, for: "subscribe")))
            }
            try await client.assign(starts)
        }
        let kept = Set(topics)
        await fetcher.absorbReadAhead()
        fetcher.drop { !kept.contains($0.topic) }
        subscription = .topics(topics)
        subscribedAt = clock.now()
        if configuration.groupID != nil && keepAlive == nil && !reading.isProcessing { startKeepAlive() }
        logger.debug("subscribed", metadata: ["kafka.topics": "\(topics.joined(separator: ","))"])
    }

    /// The partitions assigned to this consumer now.
    public var assignment: Set<TopicPartition> { context.assignment }

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
        let (assignment, lag, lastError, member, unreachableSince) = context.state.withLock {
            ($0.assignment, $0.lag, $0.lastError, $0.isGroupMember, $0.unreachableSince)
        }
        var lagByPartition = lag.filter { assignment.contains($0.key) }
        if !machine.isClosed {
            for partition in assignment where lagByPartition[partition] == nil {
                // Before librdkafka's statistics: the end it last heard of, less where reading stands.
                guard let end = client.cachedWatermarks(partition).high, let next = (try? nextOffsetKnown(partition)) ?? nil else { continue }
                lagByPartition[partition] = max(0, end - next)
            }
        }
        return ConsumerHealth(
            assignedPartitions: assignment, lastEventTime: lastEventTime,
            lagByPartition: lagByPartition, lastError: lastError, isClosed: machine.isClosed,
            isGroupMember: member && !machine.isClosed,
            brokersUnreachableFor: machine.isClosed ? nil : unreachableSince.map { ContinuousClock.now - $0 })
    }

    /// Stops delivering events of these partitions until ``resume(_:)``; the consumer keeps
    /// its assignment and the group membership. Events already fetched for them wait.
    public func pause(_ partitions: [TopicPartition]) async throws {
        try checkOpen("pause")
        try checkNotProcessing("pause")
        context.state.withLock { $0.userPaused.formUnion(partitions) }
        // The reader's next events are chosen again, without the paused partitions.
        if let batch = reading.batch { putBack(batch.cut()) }
        await client.setPausedAndWait(true, partitions)
    }

    /// Delivers the events of these paused partitions again, from where they stopped.
    public func resume(_ partitions: [TopicPartition]) async throws {
        try checkOpen("resume")
        try checkNotProcessing("resume")
        let resumed = context.state.withLock { state in partitions.filter { state.userPaused.remove($0) != nil } }
        fetcher.releaseHeld(resumed)
        await client.setPausedAndWait(false, partitions)
    }

    /// The partitions paused by ``pause(_:)``.
    public var pausedPartitions: Set<TopicPartition> { userPaused }

    // MARK: - Closing

    /// Whether ``close(timeout:)`` has finished.
    public var isClosed: Bool { machine.isClosed }

    /// Counts of what this consumer has seen.
    public var statistics: ConsumerStatistics {
        var snapshot = counters
        snapshot.bufferedMessages = fetcher.count
        if let progress = reading.batch?.progress {
            snapshot.eventsDelivered += progress.uncounted
            snapshot.bufferedMessages += progress.waiting
        }
        (snapshot.rebalances, snapshot.commitFailures) = context.state.withLock { ($0.rebalances, $0.commitFailures) }
        snapshot.fetcherWakeUps = client.fetcherWakeUps
        return snapshot
    }

    /// Closes the consumer: with auto-commit, commits the offsets of processed events; leaves
    /// the group so that its partitions move at once; destroys the handle. Waits at most
    /// `timeout` (the configuration's `closeTimeout` when nil) for the group. Idempotent;
    /// every later call but `close` throws ``WorkflowEventsError`` `clientClosed`.
    public func close(timeout: Duration? = nil) async {
        switch machine.beginClose() {
        case .alreadyClosed:
            return
        case .wait:
            await withCheckedContinuation { machine.waitForClose($0) }
            return
        case .close:
            break
        }
        keepAlive?.cancel()
        keepAlive = nil
        let started = ContinuousClock.now
        client.wakeUp()
        // The close owns the fetch path to the end: no fetch starts meanwhile.
        await fetcher.acquire()
        storePolledOffsets()
        // The reader's finished events are stored; what it holds was not finished: it is not
        // stored, and will be read again.
        if let batch = reading.batch { settle(batch.close()) }
        setReading(.idle)
        fetcher.destroyAll()
        if let producer = deadLetterProducer {
            deadLetterProducer = nil
            await producer.close(timeout: .seconds(5))
        }
        await client.closeAndDestroy(timeout: timeout ?? configuration.closeTimeout)
        let waiters = machine.closed()
        fetcher.release()
        listeners.finishAll()
        let committed = context.state.withLock { $0.lastCommitted }
        logger.info(
            "consumer closed",
            metadata: [
                "duration": "\(ContinuousClock.now - started)",
                "committed":
                    "\(committed.isEmpty ? "nothing" : committed.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", "))",
            ])
        for waiter in waiters { waiter.resume() }
    }

    // MARK: - Internals

    /// Succeeds once a bootstrap server answers; else throws a ``KafkaError`` naming the
    /// servers and the time waited.
    func checkConnection(for operation: String) async throws {
        do {
            try await client.checkConnection(timeout: configuration.connectionTimeout)
        } catch let error as KafkaError {
            throw KafkaError(
                code: error.code,
                message:
                    "no bootstrap server of '\(configuration.bootstrapServers)' answered within \(configuration.connectionTimeout): \(error.message)",
                operation: operation, isFatal: false, isRetriable: true)
        }
    }

    func checkOpen(_ operation: String) throws {
        guard machine.isOpen else {
            throw WorkflowEventsError(.clientClosed, "cannot \(operation): the consumer is closed; create a new one")
        }
    }

    /// Whether a group member is still waiting for its first assignment (at most the
    /// configuration's `assignmentTimeout`): idle timeouts count from the assignment, not
    /// from the join, which takes seconds.
    var isAwaitingFirstAssignment: Bool {
        configuration.groupID != nil && fetcher.seenGeneration == 0 && context.assignment.isEmpty
            && clock.now() < subscribedAt.advanced(by: configuration.assignmentTimeout)
    }

}
