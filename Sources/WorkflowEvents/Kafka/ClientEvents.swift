import Logging

// What a consumer's client tells the consumer, from the client's own threads.

/// What librdkafka's callbacks and the client report to the consumer, and what they read of
/// it: rebalances (on the thread of the consume call or the close that runs them), errors,
/// commits, statistics, and the pauses the application asked for. The consumer's
/// `ConsumerClientContext` hears it: the files under `Kafka/` name no type of the consumer.
protocol ClientEvents: AnyObject, Sendable {
    /// Where librdkafka's log lines go.
    var logger: Logger { get }

    /// The group gave `partitions` (all of them, or with `cooperative` the ones added).
    func partitionsAssigned(_ partitions: [TopicPartition], cooperative: Bool, with operations: some RebalanceOperations)
    /// The group takes `partitions` back, or they are `lost` (another member owns them).
    func partitionsRevoked(_ partitions: [TopicPartition], lost: Bool, cooperative: Bool, with operations: some RebalanceOperations)
    /// A rebalance failed.
    func rebalanceFailed(_ error: KafkaError, with operations: some RebalanceOperations)
    /// The application assigned `partitions` itself, each at its offset: on the thread that
    /// assigned them, before anything is fetched of them.
    func assignedDirectly(_ partitions: [(TopicPartition, Int64)], with operations: some RebalanceOperations)

    /// Pauses or resumes `partitions` in the client, unless a pause was decided at an
    /// assignment generation a rebalance has ended since. Returns the client's error.
    func setPaused(
        _ paused: Bool, _ partitions: [TopicPartition], decidedAt generation: Int?, with operations: some RebalanceOperations
    ) -> KafkaError?

    /// The partitions assigned now.
    var assignment: Set<TopicPartition> { get }

    /// librdkafka reported an error (`allBrokersDown` when no broker is reachable any more).
    func errorReported(_ error: KafkaError, allBrokersDown: Bool)
    /// A commit came back: nil when the broker took it, with the next-offsets it took.
    func commitAnswered(_ error: KafkaError?, offsets: [(TopicPartition, Int64)], handingOver: Bool)
    /// A report of librdkafka's statistics.
    func statisticsReported(_ report: StatisticsReport)
}

/// The object librdkafka's callbacks find behind their opaque pointer.
final class ClientEventsBox {
    let events: any ClientEvents

    init(_ events: any ClientEvents) { self.events = events }
}
