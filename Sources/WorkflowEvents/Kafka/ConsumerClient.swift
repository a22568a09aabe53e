import Dispatch
import Synchronization

// What the consumer asks of its Kafka client. `RDKafkaConsumerClient` is librdkafka's (the
// only code of the consumer that calls the C API); the tests' in-memory client scripts
// partitions, messages, rebalances and errors.

/// The consumer's Kafka client. Calls that can block return through `async` and never block
/// Swift's cooperative pool; a rebalance runs inside a fetch (or the close), on the
/// client's own thread, and is reported through the ``ClientEvents`` the client was made with.
protocol ConsumerClient: AnyObject, Sendable {
    // MARK: Fetching

    /// Waits up to `timeout` for a message, then takes the others already waiting, up to
    /// `maximum` in all; validates the values when `decode` is set. `wakeUp()` ends the
    /// wait early.
    func fetch(timeout: Duration, maximum: Int, decode: Bool) async -> [FetchedMessage]
    /// Takes up to `maximum` messages already waiting, without waiting for more.
    func fetchAvailable(maximum: Int) async -> [FetchedMessage]
    /// The same, validating the values beside the reader's work when `decode` is set.
    func fetchAhead(maximum: Int, decode: Bool) async -> [FetchedMessage]
    /// Ends a `fetch` that is waiting, from any thread.
    func wakeUp()
    /// How many times librdkafka 2.0.2's fetcher was woken.
    var fetcherWakeUps: Int { get }

    // MARK: Subscription and assignment

    func subscribe(_ topics: [String]) async throws
    func unsubscribe() async throws
    /// Assigns partitions directly (no group), each starting at the given offset.
    func assign(_ partitions: [(TopicPartition, Int64)]) async throws
    /// Pauses or resumes partitions between two fetches, through
    /// ``ClientEvents/setPaused(_:_:decidedAt:with:)``; a pause decided at assignment
    /// `generation` is dropped when the assignment changed since. Returns before it is done;
    /// `done` runs once it is.
    func setPaused(_ paused: Bool, _ partitions: [TopicPartition], decidedAt generation: Int?, then done: (@Sendable () -> Void)?)
    /// The partitions of each topic, asked of the cluster.
    func partitions(of topics: [String], timeout: Duration) async throws -> [TopicPartition]
    /// The names of every topic in the cluster.
    func topicNames(timeout: Duration) async throws -> [String]
    /// Succeeds once a bootstrap server answers.
    func checkConnection(timeout: Duration) async throws

    // MARK: Offsets

    /// Stores next-offsets for the next commit (called under the tracker's lock).
    func store(_ entries: [(TopicPartition, Int64)])
    /// Commits the stored offsets, or the given ones, and waits for the broker's answer.
    func commit(_ offsets: [(TopicPartition, Int64)]?, forRebalanceHandler: Bool) async throws
    /// The same, on the calling thread: for a rebalance's own thread, never the pool.
    func commitBlocking(_ offsets: [(TopicPartition, Int64)])
    /// The committed next-offsets of these partitions (absent where none is committed).
    func committed(_ partitions: [TopicPartition], timeout: Duration) async throws -> [TopicPartition: Int64]
    /// The offset after the last message handed to this process.
    func position(_ partition: TopicPartition) throws -> Int64?
    /// The watermarks last heard of, without asking a broker.
    func cachedWatermarks(_ partition: TopicPartition) -> (low: Int64?, high: Int64?)
    /// The watermarks, asked of the partition's leader.
    func watermarks(_ partition: TopicPartition, timeout: Duration) async throws -> (low: Int64, high: Int64)
    /// The first offset at or after a time (in milliseconds since 1970), per partition.
    func offsets(forTime milliseconds: Int64, of partitions: [TopicPartition], timeout: Duration) async throws -> [TopicPartition: Int64?]
    /// Moves the fetch position of an assigned partition.
    func seek(_ partition: TopicPartition, to offset: Int64, timeout: Duration) async throws

    // MARK: Closing

    /// Whether the close has begun: no fetch starts any more.
    var isClosing: Bool { get }
    /// Leaves the group (committing stored offsets when auto-commit is on, after the
    /// revocation), then destroys the client; returns after `timeout` at the latest.
    func closeAndDestroy(timeout: Duration) async
    /// The same, without waiting.
    func closeAndDestroyInBackground()
}

extension ConsumerClient {
    func fetch(timeout: Duration, maximum: Int) async -> [FetchedMessage] {
        await fetch(timeout: timeout, maximum: maximum, decode: false)
    }

    func commit(_ offsets: [(TopicPartition, Int64)]?) async throws {
        try await commit(offsets, forRebalanceHandler: false)
    }

    func setPaused(_ paused: Bool, _ partitions: [TopicPartition], decidedAt generation: Int? = nil) {
        setPaused(paused, partitions, decidedAt: generation, then: nil)
    }

    /// The same, returning once the client has it: for callers whose pace nothing else bounds.
    func setPausedAndWait(_ paused: Bool, _ partitions: [TopicPartition]) async {
        await withCheckedContinuation { continuation in
            setPaused(paused, partitions, decidedAt: nil) { continuation.resume() }
        }
    }
}

/// What a rebalance asks of the client, on the thread that runs the rebalance (librdkafka's
/// callback, inside a consume call or the close).
protocol RebalanceOperations {
    /// Takes `partitions` on, each at its start offset where one is given, else at its
    /// committed offset.
    func assign(_ partitions: [TopicPartition], startOffsets: [TopicPartition: Int64], incremental: Bool) -> KafkaError?
    /// Gives `partitions` up (all of them when not `incremental`).
    func unassign(_ partitions: [TopicPartition], incremental: Bool) -> KafkaError?
    /// Pauses or resumes `partitions`; returns those the client now holds paused (for a
    /// pause) and its error.
    func pause(_ paused: Bool, _ partitions: [TopicPartition]) -> (paused: [TopicPartition], error: KafkaError?)
    /// Stores next-offsets for the next commit.
    func store(_ entries: [(TopicPartition, Int64)])
    /// Forgets the offsets stored for `partitions`, so that giving them up commits nothing.
    func discardStoredOffsets(_ partitions: [TopicPartition])
}
