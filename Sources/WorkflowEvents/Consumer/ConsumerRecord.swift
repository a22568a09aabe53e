public import Foundation

/// One Kafka record as `poll` returns it: the raw value, before validation.
public struct ConsumerRecord: Sendable, Hashable {
    public var topic: String
    public var partition: Int32
    public var offset: Int64
    public var key: [UInt8]?
    /// nil for a tombstone.
    public var value: [UInt8]?
    public var headers: [KafkaHeader]
    /// The record's timestamp (create or log-append time), when the broker gave one.
    public var timestamp: Date?

    public init(
        topic: String, partition: Int32, offset: Int64, key: [UInt8]?, value: [UInt8]?,
        headers: [KafkaHeader] = [], timestamp: Date? = nil
    ) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.key = key
        self.value = value
        self.headers = headers
        self.timestamp = timestamp
    }

    public var topicPartition: TopicPartition { TopicPartition(topic: topic, partition: partition) }

    /// The key as UTF-8 text (the workflow id, for the contract's messages).
    public var keyString: String? { key.flatMap { String(validating: $0, as: UTF8.self) } }

    /// Validates the value as a workflow event (the seed's `model_validate(record.value)`).
    public func event() throws -> WorkflowEvent {
        guard let value else {
            throw WorkflowEventValidationError(
                code: .emptyMessage, field: nil, byteOffset: nil, reason: "the record is a tombstone (null value)")
        }
        return try WorkflowEvent(validatingJSON: value)
    }
}

/// A consumed event with where it came from: what `messages(topics:)` yields.
public struct WorkflowEventMessage: Sendable, Hashable {
    public var event: WorkflowEvent
    public var topic: String
    public var partition: Int32
    public var offset: Int64
    public var key: [UInt8]?
    public var headers: [KafkaHeader]
    public var timestamp: Date?

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

    public init() {}
}
