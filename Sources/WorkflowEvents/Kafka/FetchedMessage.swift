internal import CRDKafka
import DequeModule
import Foundation
import Synchronization

// A message taken from librdkafka, the buffer of them a reader works through, and the
// partition lists librdkafka's calls take.

/// One message fetched by a ``ConsumerClient`` and owned by the caller until `destroy()`:
/// librdkafka's message (its pointer stays in the `Kafka/` files: outside them the message is
/// read through its accessors), or a record held in memory (the in-memory client's).
struct FetchedMessage: @unchecked Sendable {
    // Safe to send: the message is owned by exactly one holder (the consumer actor) and
    // librdkafka's message objects may be read and destroyed from any thread; a record in
    // memory is immutable.
    enum Storage {
        case librdkafka(UnsafeMutablePointer<rd_kafka_message_t>)
        case inMemory(InMemoryMessage)
    }
    let storage: Storage
    /// The value validated ahead, on the poll queue (nil when not done yet, and for
    /// errors and tombstones).
    var decoded: Result<WorkflowEvent, WorkflowEventValidationError>?

    init(pointer: UnsafeMutablePointer<rd_kafka_message_t>) {
        storage = .librdkafka(pointer)
    }

    init(_ message: InMemoryMessage) {
        storage = .inMemory(message)
    }

    var partition: Int32 {
        switch storage {
        case .librdkafka(let pointer): pointer.pointee.partition
        case .inMemory(let message): message.record.partition
        }
    }

    var offset: Int64 {
        switch storage {
        case .librdkafka(let pointer): pointer.pointee.offset
        case .inMemory(let message): message.record.offset
        }
    }

    var isError: Bool {
        switch storage {
        case .librdkafka(let pointer): pointer.pointee.err != RD_KAFKA_RESP_ERR_NO_ERROR
        case .inMemory(let message): message.error != nil
        }
    }

    var isTombstone: Bool {
        switch storage {
        case .librdkafka(let pointer): pointer.pointee.payload == nil
        case .inMemory(let message): message.record.value == nil
        }
    }

    var valueLength: Int {
        switch storage {
        case .librdkafka(let pointer): pointer.pointee.len
        case .inMemory(let message): message.record.value?.count ?? 0
        }
    }

    var topic: String {
        switch storage {
        case .librdkafka(let pointer):
            guard let topic = pointer.pointee.rkt else { return "" }
            return String(cString: rd_kafka_topic_name(topic))
        case .inMemory(let message): return message.record.topic
        }
    }

    var topicPartition: TopicPartition { TopicPartition(topic: topic, partition: partition) }

    /// The error this message carries, if it is an error event rather than a record.
    func error(operation: String) -> KafkaError? {
        switch storage {
        case .librdkafka(let pointer):
            let err = pointer.pointee.err
            guard err != RD_KAFKA_RESP_ERR_NO_ERROR else { return nil }
            let detail = rd_kafka_message_errstr(pointer).map { String(cString: $0) }
            return KafkaError(err, operation: operation, message: detail)
        case .inMemory(let message):
            return message.error
        }
    }

    /// Reads the value in place, without copying it.
    func withValue<T>(_ body: (UnsafeRawBufferPointer) throws -> T) rethrows -> T {
        switch storage {
        case .librdkafka(let pointer):
            return try body(UnsafeRawBufferPointer(start: pointer.pointee.payload, count: pointer.pointee.len))
        case .inMemory(let message):
            guard let value = message.record.value else { return try body(UnsafeRawBufferPointer(start: nil, count: 0)) }
            return try value.withUnsafeBytes(body)
        }
    }

    var value: [UInt8]? {
        switch storage {
        case .librdkafka(let pointer):
            guard let payload = pointer.pointee.payload else { return nil }
            return Array(UnsafeRawBufferPointer(start: payload, count: pointer.pointee.len))
        case .inMemory(let message): return message.record.value
        }
    }

    var key: [UInt8]? {
        switch storage {
        case .librdkafka(let pointer):
            guard let key = pointer.pointee.key else { return nil }
            return Array(UnsafeRawBufferPointer(start: key, count: pointer.pointee.key_len))
        case .inMemory(let message): return message.record.key
        }
    }

    var headers: [KafkaHeader] {
        let pointer: UnsafeMutablePointer<rd_kafka_message_t>
        switch storage {
        case .librdkafka(let message): pointer = message
        case .inMemory(let message): return message.record.headers
        }
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
        switch storage {
        case .librdkafka(let pointer):
            var type = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
            let milliseconds = rd_kafka_message_timestamp(pointer, &type)
            guard type != RD_KAFKA_TIMESTAMP_NOT_AVAILABLE, milliseconds >= 0 else { return nil }
            return Date(timeIntervalSince1970: Double(milliseconds) / 1000)
        case .inMemory(let message): return message.record.timestamp
        }
    }

    var record: ConsumerRecord {
        if case .inMemory(let message) = storage { return message.record }
        return ConsumerRecord(
            topic: topic, partition: partition, offset: offset, key: key, value: value,
            headers: headers, timestamp: timestamp)
    }

    /// Validates the values of `batch` (on the poll queue, beside the reader's work).
    static func decodeValues(_ batch: inout [FetchedMessage]) {
        for index in batch.indices where !batch[index].isError && !batch[index].isTombstone {
            batch[index].decoded = batch[index].withValue { bytes in
                Result { () throws(WorkflowEventValidationError) in try WorkflowEvent.decode(bytes) }
            }
        }
    }

    func destroy() {
        switch storage {
        case .librdkafka(let pointer): rd_kafka_message_destroy(pointer)
        case .inMemory(let message): message.noteDestroyed()
        }
    }
}

/// A message of the in-memory client: the record librdkafka's message would carry (or an
/// error), and how many times it was destroyed (once, by its last owner), which that
/// client's tests check.
final class InMemoryMessage: Sendable {
    let record: ConsumerRecord
    let error: KafkaError?
    let destroyCount = Atomic<Int>(0)

    init(_ record: ConsumerRecord, error: KafkaError? = nil) {
        self.record = record
        self.error = error
    }

    func noteDestroyed() { destroyCount.add(1, ordering: .relaxed) }
}

/// Messages fetched from librdkafka and not yet delivered, oldest first.
struct FetchedMessageBuffer {
    var messages = Deque<FetchedMessage>()

    var count: Int { messages.count }
    var isEmpty: Bool { messages.isEmpty }

    mutating func append(_ batch: [FetchedMessage]) {
        messages.append(contentsOf: batch)
    }

    /// Puts messages back in front, in their order (events held while their partition
    /// was paused, or given back by a reader).
    mutating func prepend(_ earlier: [FetchedMessage]) {
        messages.insert(contentsOf: earlier, at: 0)
    }

    /// Removes and returns the oldest message; the caller now owns it.
    mutating func popFirst() -> FetchedMessage? {
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
    mutating func removeAll() -> [FetchedMessage] {
        defer { messages.removeAll() }
        return Array(messages)
    }

    mutating func destroyAll() {
        for message in messages { message.destroy() }
        messages.removeAll()
    }
}

/// The offset of the last message of each partition among `messages` (in order), less the
/// `excluded` partitions.
func lastOffsets(of messages: ArraySlice<FetchedMessage>, excluding excluded: Set<TopicPartition> = []) -> [(TopicPartition, Int64)] {
    struct Partition: Equatable {
        let rkt: UnsafeMutableRawPointer?
        let name: String?
        let partition: Int32
    }
    var seen: [Partition] = []
    var result: [(TopicPartition, Int64)] = []
    var previous: Partition?
    for message in messages.reversed() {
        // librdkafka's topic handle names the topic without building its name.
        let key: Partition
        switch message.storage {
        case .librdkafka(let pointer):
            key = Partition(rkt: UnsafeMutableRawPointer(pointer.pointee.rkt), name: nil, partition: pointer.pointee.partition)
        case .inMemory(let record):
            key = Partition(rkt: nil, name: record.record.topic, partition: record.record.partition)
        }
        // librdkafka hands a partition's messages out in runs: most messages continue one.
        if key == previous { continue }
        previous = key
        guard !seen.contains(key) else { continue }
        seen.append(key)
        let partition = message.topicPartition
        if excluded.isEmpty || !excluded.contains(partition) { result.append((partition, message.offset)) }
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
