internal import CRDKafka
import Dispatch
import Logging
import Metrics
import Synchronization

extension RDKafkaConsumerClient {
    // MARK: Offsets

    /// Stores next-offsets for the next commit, when the handle is still open.
    func store(_ entries: [(TopicPartition, Int64)]) {
        usingIfOpen(()) { storeOffsets(handle, entries) }
    }

    /// Commits the stored offsets, or the given ones, and waits for the broker's answer.
    /// `forRebalanceHandler`: on a queue of its own, since the operations queue may be
    /// running the close whose revocation waits for that handler.
    func commit(_ offsets: [(TopicPartition, Int64)]?, forRebalanceHandler: Bool) async throws {
        let queue = forRebalanceHandler ? handlerQueue : operationsQueue
        let err: rd_kafka_resp_err_t = try await request(on: queue, "commit") { [self] in
            if let offsets {
                return withPartitionList(offsets) { list in
                    let err = rd_kafka_commit(handle, list, 0)
                    if err != RD_KAFKA_RESP_ERR_NO_ERROR { return err }
                    return entries(of: list).first(where: { $0.2 != RD_KAFKA_RESP_ERR_NO_ERROR })?.2
                        ?? RD_KAFKA_RESP_ERR_NO_ERROR
                }
            }
            return rd_kafka_commit(handle, nil, 0)
        }
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR || err == RD_KAFKA_RESP_ERR__NO_OFFSET else {
            throw KafkaError(err, operation: "commit")
        }
    }

    /// Commits these next-offsets and waits for the broker, on the calling thread: for
    /// librdkafka's own threads (a rebalance callback), never the cooperative pool.
    func commitBlocking(_ offsets: [(TopicPartition, Int64)]) {
        guard !offsets.isEmpty else { return }
        let err = usingIfOpen(RD_KAFKA_RESP_ERR__DESTROY) { withPartitionList(offsets) { rd_kafka_commit(handle, $0, 0) } }
        if err != RD_KAFKA_RESP_ERR_NO_ERROR && err != RD_KAFKA_RESP_ERR__NO_OFFSET {
            events.commitAnswered(KafkaError(err, operation: "commit before handing partitions over"), offsets: [], handingOver: true)
        }
    }

    /// The committed next-offsets of these partitions (nil where none is committed).
    func committed(_ partitions: [TopicPartition], timeout: Duration) async throws -> [TopicPartition: Int64] {
        let milliseconds = timeout.milliseconds
        return try await request(on: operationsQueue, "fetch committed offsets") { [self] in
            try withPartitionList(partitions.map { ($0, RDKafkaOffset.invalid) }) { list in
                let err = rd_kafka_committed(handle, list, milliseconds)
                guard err == RD_KAFKA_RESP_ERR_NO_ERROR else {
                    throw KafkaError(err, operation: "fetch committed offsets")
                }
                var offsets: [TopicPartition: Int64] = [:]
                for (partition, offset, _) in entries(of: list) where offset >= 0 {
                    offsets[partition] = offset
                }
                return offsets
            }
        }
    }

    /// librdkafka's fetch position: the offset after the last message handed to this process.
    func position(_ partition: TopicPartition) throws -> Int64? {
        try using("ask for the position of \(partition)") {
            withPartitionList([(partition, RDKafkaOffset.invalid)]) { list in
                guard rd_kafka_position(handle, list) == RD_KAFKA_RESP_ERR_NO_ERROR else { return nil }
                let offset = list.pointee.elems[0].offset
                return offset >= 0 ? offset : nil
            }
        }
    }

    /// The low and high watermarks librdkafka last heard of in a fetch response for this
    /// partition, without asking a broker; nil for either while unknown.
    func cachedWatermarks(_ partition: TopicPartition) -> (low: Int64?, high: Int64?) {
        usingIfOpen((nil, nil)) {
            var low: Int64 = RDKafkaOffset.invalid
            var high: Int64 = RDKafkaOffset.invalid
            guard
                rd_kafka_get_watermark_offsets(handle, partition.topic, partition.partition, &low, &high)
                    == RD_KAFKA_RESP_ERR_NO_ERROR
            else { return (nil, nil) }
            return (low >= 0 ? low : nil, high >= 0 ? high : nil)
        }
    }

    /// The low and high watermarks of a partition, asked of its leader.
    func watermarks(_ partition: TopicPartition, timeout: Duration) async throws -> (low: Int64, high: Int64) {
        let milliseconds = timeout.milliseconds
        let (low, high) = try await request(on: operationsQueue, "query watermarks of \(partition)") { [self] in
            var low: Int64 = 0
            var high: Int64 = 0
            let err = rd_kafka_query_watermark_offsets(
                handle, partition.topic, partition.partition, &low, &high, milliseconds)
            guard err == RD_KAFKA_RESP_ERR_NO_ERROR else {
                throw KafkaError(err, operation: "query watermarks of \(partition)")
            }
            return (low, high)
        }
        return (low, high)
    }

    /// For each partition, the offset of its first message whose timestamp is at or after
    /// `milliseconds` since 1970, nil where there is none.
    func offsets(forTime milliseconds: Int64, of partitions: [TopicPartition], timeout: Duration) async throws -> [TopicPartition: Int64?] {
        let wait = timeout.milliseconds
        return try await request(on: operationsQueue, "look up offsets by time") { [self] in
            try withPartitionList(partitions.map { ($0, milliseconds) }) { list in
                let err = rd_kafka_offsets_for_times(handle, list, wait)
                guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError(err, operation: "look up offsets by time") }
                var offsets: [TopicPartition: Int64?] = [:]
                for (partition, offset, error) in entries(of: list) {
                    guard error == RD_KAFKA_RESP_ERR_NO_ERROR else {
                        throw KafkaError(error, operation: "look up the offset of \(partition) by time")
                    }
                    offsets[partition] = offset >= 0 ? offset : nil
                }
                return offsets
            }
        }
    }

    /// Moves the fetch position of an assigned partition and waits until librdkafka has
    /// dropped what it had prefetched from the old position.
    func seek(_ partition: TopicPartition, to offset: Int64, timeout: Duration) async throws {
        let milliseconds = Self.seekTimeoutArgument(timeout)
        try await request(on: operationsQueue, "seek \(partition) to \(offset)") { [self] in
            try withPartitionList([(partition, offset)]) { list in
                if let error = rd_kafka_seek_partitions(handle, list, milliseconds) {
                    throw KafkaError(consuming: error, operation: "seek \(partition) to \(offset)")
                }
                let err = list.pointee.elems[0].err
                if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(err, operation: "seek \(partition) to \(offset)") }
            }
        }
    }

    /// What to pass `rd_kafka_seek_partitions` to wait `timeout`. Before 2.1.0 it waited
    /// a thousandth of the time it was given (librdkafka pull request 4230): a seek whose
    /// broker thread took more than 10 ms to answer failed with "Timed out waiting for 1
    /// remaining partition seek(s)" although 10 s were given.
    static func seekTimeoutArgument(_ timeout: Duration, librdkafkaVersion: Int = librdkafkaVersionNumber) -> Int32 {
        let milliseconds = Int64(timeout.milliseconds)
        guard librdkafkaVersion < 0x0201_0000 else { return Int32(milliseconds) }
        return Int32(clamping: milliseconds * 1000)
    }
}
