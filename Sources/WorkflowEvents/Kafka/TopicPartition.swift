/// One partition of one topic.
public struct TopicPartition: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The topic name.
    public var topic: String
    /// The partition number, from 0.
    public var partition: Int32

    /// Names a partition of a topic.
    public init(topic: String, partition: Int32) {
        self.topic = topic
        self.partition = partition
    }

    /// `topic[partition]`.
    public var description: String { "\(topic)[\(partition)]" }

    /// Orders by topic, then partition.
    public static func < (lhs: Self, rhs: Self) -> Bool {
        (lhs.topic, lhs.partition) < (rhs.topic, rhs.partition)
    }
}

/// A Kafka message header. The value may be null.
public struct KafkaHeader: Hashable, Sendable {
    /// The header name.
    public var name: String
    /// The header value; nil is a null value, distinct from an empty one.
    public var value: [UInt8]?

    /// A header with raw bytes (or null).
    public init(name: String, value: [UInt8]?) {
        self.name = name
        self.value = value
    }

    /// A header with a UTF-8 text value.
    public init(name: String, string: String) {
        self.init(name: name, value: Array(string.utf8))
    }

    /// The value as UTF-8 text, if it is valid UTF-8.
    public var stringValue: String? {
        value.flatMap { String(validating: $0, as: UTF8.self) }
    }
}

extension Array where Element == KafkaHeader {
    /// The value of the last header with this name, as text.
    public func string(_ name: String) -> String? {
        last(where: { $0.name == name })?.stringValue
    }
}

/// How far a consumer group is behind on one partition.
public struct PartitionLag: Hashable, Sendable {
    /// The topic and partition.
    public var partition: TopicPartition
    /// The group's committed next-offset; nil when the group has committed none.
    public var committedOffset: Int64?
    /// The oldest offset the broker still holds.
    public var lowWatermark: Int64
    /// The offset the next produced record will get (the high watermark).
    public var endOffset: Int64

    /// Creates a lag entry.
    public init(partition: TopicPartition, committedOffset: Int64?, lowWatermark: Int64, endOffset: Int64) {
        self.partition = partition
        self.committedOffset = committedOffset
        self.lowWatermark = lowWatermark
        self.endOffset = endOffset
    }

    /// Records the group has still to read: from the committed offset (or, with none, from
    /// the oldest record held) to the end.
    public var lag: Int64 {
        max(0, endOffset - max(committedOffset ?? lowWatermark, lowWatermark))
    }
}
