public import Foundation

/// One Kafka record as `poll` returns it: the raw value, before validation.
public struct ConsumerRecord: Sendable, Hashable {
    /// The topic the message was read from.
    public var topic: String
    /// The partition of the topic.
    public var partition: Int32
    /// The message's offset in its partition.
    public var offset: Int64
    /// The message key (the event's `workflow_id` for this package's producers), if any.
    public var key: [UInt8]?
    /// nil for a tombstone.
    public var value: [UInt8]?
    /// The message headers, in the order they were sent.
    public var headers: [KafkaHeader]
    /// The record's timestamp (create or log-append time), when the broker gave one.
    public var timestamp: Date?

    /// Creates a record, for tests and tools.
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

    /// The topic and partition together.
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
