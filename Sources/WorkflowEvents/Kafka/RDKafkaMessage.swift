internal import CRDKafka
import DequeModule
import Foundation

// A message taken from librdkafka, the buffer of them a reader works through, and the
// partition lists librdkafka's calls take.

/// One message fetched from librdkafka and owned by the caller until `destroy()`.
/// The pointer stays in the `Kafka/` files: outside them the message is read through its
/// accessors.
struct RDKafkaMessage: @unchecked Sendable {
    // Safe to send: the message is owned by exactly one holder (the consumer actor) and
    // librdkafka's message objects may be read and destroyed from any thread.
    let pointer: UnsafeMutablePointer<rd_kafka_message_t>
    /// The value validated ahead, on the poll queue (nil when not done yet, and for
    /// errors and tombstones).
    var decoded: Result<WorkflowEvent, WorkflowEventValidationError>?

    init(pointer: UnsafeMutablePointer<rd_kafka_message_t>) {
        self.pointer = pointer
    }

    var partition: Int32 { pointer.pointee.partition }
    var offset: Int64 { pointer.pointee.offset }
    var isError: Bool { pointer.pointee.err != RD_KAFKA_RESP_ERR_NO_ERROR }
    var isTombstone: Bool { pointer.pointee.payload == nil }
    var valueLength: Int { pointer.pointee.len }

    var topic: String {
        guard let topic = pointer.pointee.rkt else { return "" }
        return String(cString: rd_kafka_topic_name(topic))
    }

    /// The error this message carries, if it is an error event rather than a record.
    func error(operation: String) -> KafkaError? {
        let err = pointer.pointee.err
        guard err != RD_KAFKA_RESP_ERR_NO_ERROR else { return nil }
        let detail = rd_kafka_message_errstr(pointer).map { String(cString: $0) }
        return KafkaError(err, operation: operation, message: detail)
    }

    /// Reads the value in place, without copying it.
    func withValue<T>(_ body: (UnsafeRawBufferPointer) throws -> T) rethrows -> T {
        try body(UnsafeRawBufferPointer(start: pointer.pointee.payload, count: pointer.pointee.len))
    }

    var value: [UInt8]? {
        guard let payload = pointer.pointee.payload else { return nil }
        return Array(UnsafeRawBufferPointer(start: payload, count: pointer.pointee.len))
    }

    var key: [UInt8]? {
        guard let key = pointer.pointee.key else { return nil }
        return Array(UnsafeRawBufferPointer(start: key, count: pointer.pointee.key_len))
    }

    var headers: [KafkaHeader] {
        var headers: OpaquePointer?
        guard rd_kafka_message_headers(pointer, &headers) == RD_KAFKA_RESP_ERR_NO_ERROR, let headers else {
            return []
        }
        var result: [KafkaHeader] = []
        var index = 0
        var name: UnsafePointer<CChar>?
        var value: UnsafeRawPointer?
        var size = 0
        while rd_kafka_header_get_all(headers, index, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR {
            let text = name.map { String(cString: $0) } ?? ""
            let bytes = value.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) }
            result.append(KafkaHeader(name: text, value: bytes))
            index += 1
        }
        return result
    }

    var timestamp: Date? {
        var type = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
        let milliseconds = rd_kafka_message_timestamp(pointer, &type)
        guard type != RD_KAFKA_TIMESTAMP_NOT_AVAILABLE, milliseconds >= 0 else { return nil }
        return Date(timeIntervalSince1970: Double(milliseconds) / 1000)
    }

    var record: ConsumerRecord {
        ConsumerRecord(
            topic: topic, partition: partition, offset: offset, key: key, value: value,
            headers: headers, timestamp: timestamp)
    }

    func destroy() {
        rd_kafka_message_destroy(pointer)
    }
}

/// Messages fetched from librdkafka and not yet delivered, oldest first.
struct RDKafkaMessageBuffer {
    var messages = Deque<RDKafkaMessage>()

    var count: Int { messages.count }
    var isEmpty: Bool { messages.isEmpty }

    mutating func append(_ batch: [RDKafkaMessage]) {
        messages.append(contentsOf: batch)
    }

    /// Puts messages back in front, in their order (events held while their partition
    /// was paused, or given back by a reader).
    mutating func prepend(_ earlier: [RDKafkaMessage]) {
        messages.insert(contentsOf: earlier, at: 0)
    }

    /// Removes and returns the oldest message; the caller now owns it.
    mutating func popFirst() -> RDKafkaMessage? {
        messages.popFirst()
    }

    /// The offset of the first buffered message of `partition`.
    func firstOffset(of partition: TopicPartition) -> Int64? {
        messages.first {
            $0.partition == partition.partition && !$0.isError && $0.topic == partition.topic
        }?.offset
    }

    /// Destroys the buffered messages for which `shouldDrop` is true.
    mutating func drop(where shouldDrop: (TopicPartition) -> Bool) {
        messages.removeAll { message in
            guard shouldDrop(TopicPartition(topic: message.topic, partition: message.partition)) else { return false }
            message.destroy()
            return true
        }
    }

    /// Removes and returns every buffered message, oldest first; the caller now owns them.
    mutating func removeAll() -> [RDKafkaMessage] {
        defer { messages.removeAll() }
        return Array(messages)
    }

    mutating func destroyAll() {
        for message in messages { message.destroy() }
        messages.removeAll()
    }
}

/// The offset of the last message of each partition among `messages` (in order).
func lastOffsets(of messages: [RDKafkaMessage]) -> [(TopicPartition, Int64)] {
    struct Partition: Hashable {
        let topic: UnsafeMutableRawPointer?
        let partition: Int32
    }
    if messages.count == 1 {
        return [(TopicPartition(topic: messages[0].topic, partition: messages[0].partition), messages[0].offset)]
    }
    var seen = Set<Partition>()
    var result: [(TopicPartition, Int64)] = []
    for message in messages.reversed() {
        let pointee = message.pointer.pointee
        if seen.insert(Partition(topic: UnsafeMutableRawPointer(pointee.rkt), partition: pointee.partition)).inserted {
            result.append((TopicPartition(topic: message.topic, partition: message.partition), message.offset))
        }
    }
    return result
}

/// Stores next-offsets for the next commit; the caller keeps the handle alive. Partitions no
/// longer assigned are skipped by librdkafka.
func storeOffsets(_ handle: OpaquePointer, _ entries: [(TopicPartition, Int64)]) {
    guard !entries.isEmpty else { return }
    _ = withPartitionList(entries) { rd_kafka_offsets_store(handle, $0) }
}

/// Offsets as librdkafka's `rd_kafka_topic_partition_list_t`, built and destroyed here, around
/// `body`.
func withPartitionList<T>(
    _ entries: [(TopicPartition, Int64)], _ body: (UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) throws -> T
) rethrows -> T {
    let list = rd_kafka_topic_partition_list_new(Int32(clamping: max(1, entries.count)))!
    defer { rd_kafka_topic_partition_list_destroy(list) }
    for (partition, offset) in entries {
        rd_kafka_topic_partition_list_add(list, partition.topic, partition.partition).pointee.offset = offset
    }
    return try body(list)
}

func entries(of list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) -> [(TopicPartition, Int64, rd_kafka_resp_err_t)] {
    var result: [(TopicPartition, Int64, rd_kafka_resp_err_t)] = []
    let count = Int(list.pointee.cnt)
    result.reserveCapacity(count)
    for index in 0..<count {
        let element = list.pointee.elems[index]
        result.append(
            (
                TopicPartition(topic: String(cString: element.topic), partition: element.partition),
                element.offset, element.err
            ))
    }
    return result
}

/// librdkafka's special offsets.
enum RDKafkaOffset {
    static let invalid = Int64(RD_KAFKA_OFFSET_INVALID)
    static let beginning = Int64(RD_KAFKA_OFFSET_BEGINNING)
    static let end = Int64(RD_KAFKA_OFFSET_END)
}
