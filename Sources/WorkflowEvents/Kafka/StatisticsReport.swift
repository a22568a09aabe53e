import Foundation

/// What the consumer reads out of one report of librdkafka's statistics JSON.
struct StatisticsReport: Sendable, Equatable {
    /// Per-partition consumer lag (`topics.<name>.partitions.<id>.consumer_lag`; -1 and the
    /// internal partition -1 skipped); nil when the report has no topics.
    var lag: [TopicPartition: Int64]?
    /// Whether a broker (configured or learned, not librdkafka's internal one) is connected
    /// (`brokers.<name>.state` is `UP`).
    var anyBrokerUp: Bool

    init?(json: UnsafeRawBufferPointer) {
        guard let root = try? JSONValue(parsingJSON: Array(json)) else { return nil }
        lag = consumerLag(fromStatistics: root)
        anyBrokerUp = false
        if case .object(let brokers)? = root["brokers"] {
            anyBrokerUp = brokers.values.contains { broker in
                guard case .string(let state)? = broker["state"], state == "UP" else { return false }
                if case .string(let source)? = broker["source"], source == "internal" || source == "logical" { return false }
                return true
            }
        }
    }
}

/// Reads the per-partition consumer lag out of librdkafka's statistics JSON
/// (`topics.<name>.partitions.<id>.consumer_lag`; -1 and the internal partition -1 skipped).
func consumerLag(fromStatistics json: UnsafeRawBufferPointer) -> [TopicPartition: Int64]? {
    guard let root = try? JSONValue(parsingJSON: Array(json)) else { return nil }
    return consumerLag(fromStatistics: root)
}

func consumerLag(fromStatistics root: JSONValue) -> [TopicPartition: Int64]? {
    guard case .object(let topics)? = root["topics"] else { return nil }
    var lag: [TopicPartition: Int64] = [:]
    for (topic, value) in topics {
        guard case .object(let partitions)? = value["partitions"] else { continue }
        for (key, partition) in partitions {
            guard let id = Int32(key), id >= 0, let consumerLag = partition["consumer_lag"]?.intValue, consumerLag >= 0 else {
                continue
            }
            lag[TopicPartition(topic: topic, partition: id)] = consumerLag
        }
    }
    return lag
}
