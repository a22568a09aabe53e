public import Foundation

/// A consumed event with where it came from: what `messages(topics:)` yields.
public struct WorkflowEventMessage: Sendable, Hashable {
    /// The validated event.
    public var event: WorkflowEvent
    /// The topic the message was read from.
    public var topic: String
    /// The partition of the topic.
    public var partition: Int32
    /// The message's offset in its partition.
    public var offset: Int64
    /// The message key (the event's `workflow_id` for this package's producers), if any.
    public var key: [UInt8]?
    /// The message headers, in the order they were sent.
    public var headers: [KafkaHeader]
    /// The message timestamp the broker or producer set, if any.
    public var timestamp: Date?

    /// Creates a message, for tests and tools.
    public init(
        event: WorkflowEvent, topic: String, partition: Int32, offset: Int64, key: [UInt8]?,
        headers: [KafkaHeader], timestamp: Date?
    ) {
        self.event = event
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.key = key
        self.headers = headers
        self.timestamp = timestamp
    }

    /// The topic and partition together.
    public var topicPartition: TopicPartition { TopicPartition(topic: topic, partition: partition) }
}

/// Counts of what a consumer has seen since it was created.
public struct ConsumerStatistics: Sendable, Hashable {
    /// Events handed to the application (stream, callback or `poll`).
    public var eventsDelivered = 0
    /// Messages skipped because they broke the contract.
    public var invalidEvents = 0
    /// Messages with a null value, skipped.
    public var tombstones = 0
    /// Callbacks of `consumeEvents` that threw.
    public var handlerFailures = 0
    /// Messages fetched from librdkafka and not yet delivered (bounded by the fetch batch).
    public var bufferedMessages = 0
    /// Assignment changes seen (assigned and revoked both count).
    public var rebalances = 0
    /// Messages written to the dead-letter topic (invalid ones, and events whose handler
    /// kept failing).
    public var deadLettered = 0
    /// Handler calls repeated under the retry policy.
    public var handlerRetries = 0
    /// The most events `process` held at once, taken but not finished.
    public var peakEventsInProcessing = 0
    /// Offset commits the broker refused (automatic, explicit, and before a hand-over).
    public var commitFailures = 0
    /// Times librdkafka's fetcher was woken after its queue had reached a limit and run low
    /// (librdkafka before 2.1 would otherwise look again only a second later).
    public var fetcherWakeUps = 0

    /// All counts zero.
    public init() {}
}
