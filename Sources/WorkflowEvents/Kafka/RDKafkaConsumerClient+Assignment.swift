internal import CRDKafka
import Dispatch
import Logging
import Synchronization

extension RDKafkaConsumerClient {
    // MARK: Subscription and assignment

    // Subscribing and assigning run on `operationsQueue`, as the close does: librdkafka
    // 2.0.2 asserts when an assignment starts while the consumer closes.

    func subscribe(_ topics: [String]) async throws {
        try await request(on: operationsQueue, "subscribe to \(topics)") { [self] in
            let err = withPartitionList(
                topics.map { (TopicPartition(topic: $0, partition: Int32(RD_KAFKA_PARTITION_UA)), RDKafkaOffset.invalid) }
            ) { rd_kafka_subscribe(handle, $0) }
            guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError(err, operation: "subscribe to \(topics)") }
        }
    }

    /// Leaves the group's subscription; librdkafka revokes the assignment in the rebalance
    /// callback, at its next consume call.
    func unsubscribe() async throws {
        try await request(on: operationsQueue, "unsubscribe") { [self] in
            let err = rd_kafka_unsubscribe(handle)
            guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError(err, operation: "unsubscribe") }
        }
    }

    /// Assigns partitions directly (no group), each starting at the given offset.
    func assign(_ partitions: [(TopicPartition, Int64)]) async throws {
        try await request(on: operationsQueue, "assign \(partitions.map(\.0))") { [self] in
            let err = withPartitionList(partitions) { rd_kafka_assign(handle, $0) }
            guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError(err, operation: "assign \(partitions.map(\.0))") }
            events.assignedDirectly(partitions, with: RDKafkaHandleOperations(handle: handle))
        }
    }

    /// Stops fetching these partitions (librdkafka drops what it had prefetched for them)
    /// or starts again from the position after the last message handed out.
    ///
    /// Runs on the poll queue, between two consume calls (a wait for the first message of a
    /// fetch ends early for it), and returns before it is done: consume calls made after it
    /// see it done. librdkafka before 2.1 moves a partition's position past the messages a
    /// batch call has taken, then drops them from that call's batch when the partition is
    /// paused or resumed meanwhile (its pull request 4208): they would never be read.
    ///
    /// A pause decided at assignment `generation` is dropped when the assignment has changed
    /// since: the rebalance resumed the partitions it assigned, and a pause from before it
    /// would stop a partition whose owner no longer knows it paused it.
    func setPaused(
        _ paused: Bool, _ partitions: [TopicPartition], decidedAt generation: Int?, then done: (@Sendable () -> Void)?
    ) {
        guard !partitions.isEmpty else {
            done?()
            return
        }
        wakeUp()
        pollQueue.async { [self] in
            defer { done?() }
            usingIfOpen(()) {
                _ = events.setPaused(paused, partitions, decidedAt: generation, with: RDKafkaHandleOperations(handle: handle))
            }
            // librdkafka 2.0.2 starts fetching a resumed partition only when its broker thread
            // next wakes, which can be a second later.
            if !paused, let fetcherWakeUp, fetcherWakeUp.shouldWakeAfterResume() { sendWakeUp(fetcherWakeUp) }
        }
    }

    /// The partitions of each topic, asked of the cluster: also proves the cluster answers.
    func partitions(of topics: [String], timeout: Duration) async throws -> [TopicPartition] {
        let milliseconds = timeout.milliseconds
        return try await request(on: operationsQueue, "look up the partitions of \(topics)") { [self] in
            var found: [TopicPartition] = []
            for topic in topics {
                guard let handleTopic = rd_kafka_topic_new(handle, topic, nil) else {
                    throw KafkaError(rd_kafka_last_error(), operation: "look up topic '\(topic)'")
                }
                defer { rd_kafka_topic_destroy(handleTopic) }
                var metadata: UnsafePointer<rd_kafka_metadata>?
                let err = rd_kafka_metadata(handle, 0, handleTopic, &metadata, milliseconds)
                guard err == RD_KAFKA_RESP_ERR_NO_ERROR, let metadata else {
                    throw KafkaError(err, operation: "fetch metadata for topic '\(topic)'")
                }
                defer { rd_kafka_metadata_destroy(metadata) }
                for index in 0..<Int(metadata.pointee.topic_cnt) {
                    let entry = metadata.pointee.topics[index]
                    guard entry.err == RD_KAFKA_RESP_ERR_NO_ERROR else {
                        throw KafkaError(entry.err, operation: "fetch metadata for topic '\(topic)'")
                    }
                    for p in 0..<Int(entry.partition_cnt) {
                        found.append(TopicPartition(topic: topic, partition: entry.partitions[p].id))
                    }
                }
            }
            return found
        }
    }

    /// The names of every topic in the cluster.
    func topicNames(timeout: Duration) async throws -> [String] {
        let milliseconds = timeout.milliseconds
        return try await request(on: operationsQueue, "list topics") { [self] in
            var metadata: UnsafePointer<rd_kafka_metadata>?
            let err = rd_kafka_metadata(handle, 1, nil, &metadata, milliseconds)
            guard err == RD_KAFKA_RESP_ERR_NO_ERROR, let metadata else {
                throw KafkaError(err, operation: "list topics")
            }
            defer { rd_kafka_metadata_destroy(metadata) }
            var names: [String] = []
            for index in 0..<Int(metadata.pointee.topic_cnt) {
                let entry = metadata.pointee.topics[index]
                if entry.err == RD_KAFKA_RESP_ERR_NO_ERROR, let name = entry.topic { names.append(String(cString: name)) }
            }
            return names
        }
    }

    /// Asks the cluster for its brokers: succeeds once a bootstrap server answers.
    func checkConnection(timeout: Duration) async throws {
        let milliseconds = timeout.milliseconds
        try await request(on: operationsQueue, "connect") { [self] in
            var metadata: UnsafePointer<rd_kafka_metadata>?
            let err = rd_kafka_metadata(handle, 0, nil, &metadata, milliseconds)
            if let metadata { rd_kafka_metadata_destroy(metadata) }
            guard err == RD_KAFKA_RESP_ERR_NO_ERROR else {
                throw KafkaError(err, operation: "connect", message: String(cString: rd_kafka_err2str(err)))
            }
        }
    }

}
