// Choosing what is read: a manual assignment, leaving a subscription, seeking to either end
// or to a time.

public import Foundation
import Logging

extension WorkflowEventConsumer {
    /// Reads exactly `partitions`, without the group's assignment (no rebalancing: other
    /// members of the group are not told), each from its committed offset, or, without one
    /// (or without a `groupID`), from where `autoOffsetReset` says.
    ///
    /// Read them with any reader given their topics (``events(topics:idleTimeout:)``,
    /// ``batches(topics:maxCount:maxWait:idleTimeout:)``, ``poll(timeout:)``...). With a
    /// `groupID`, `commit` stores the offsets under the group. ``unsubscribe()`` ends it.
    ///
    /// - Throws: ``WorkflowEventsError`` `invalidConfiguration` after ``subscribe(_:)``
    ///   (call ``unsubscribe()`` first) or for an empty list; `readerBusy` while a reader
    ///   reads; ``KafkaError`` when a partition does not exist, or `autoOffsetReset` is
    ///   `.none` and one has no committed offset.
    public func assign(_ partitions: [TopicPartition]) async throws {
        try await assign(partitions.map { ($0, nil) })
    }

    /// Reads exactly the partitions given, each from the offset given, without the group's
    /// assignment; the rules of ``assign(_:)-([TopicPartition])`` apply.
    public func assign(_ offsets: [TopicPartition: Int64]) async throws {
        guard offsets.values.allSatisfy({ $0 >= 0 }) else {
            throw WorkflowEventsError(.invalidConfiguration, "assign \(offsets): an offset is never negative")
        }
        try await assign(offsets.map { ($0.key, $0.value) })
    }

    private func assign(_ starts: [(TopicPartition, Int64?)]) async throws {
        try checkOpen("assign")
        reclaimReleasedReaders()
        try checkNoReader("assign partitions")
        guard !starts.isEmpty else {
            throw WorkflowEventsError(.invalidConfiguration, "assign needs at least one partition (unsubscribe() ends an assignment)")
        }
        if case .topics(let topics) = subscription {
            throw WorkflowEventsError(
                .invalidConfiguration, "cannot assign partitions: this consumer is subscribed to \(topics); call unsubscribe() first")
        }
        try await checkConnection(for: "assign \(starts.map(\.0))")
        // Concrete start offsets, looked up first: librdkafka's own look-up of a committed
        // offset runs after the assignment, and can overtake a `seek` made right after it.
        let partitions = starts.map(\.0)
        let existing = Set(try await client.partitions(of: Array(Set(partitions.map(\.topic))).sorted(), timeout: configuration.connectionTimeout))
        if let missing = partitions.first(where: { !existing.contains($0) }) {
            throw KafkaError(code: .unknownTopicOrPartition, message: "\(missing) does not exist", operation: "assign \(partitions)")
        }
        let committed =
            configuration.groupID == nil ? [:] : try await client.committed(partitions, timeout: configuration.connectionTimeout)
        var resolved: [(TopicPartition, Int64)] = []
        for (partition, start) in starts {
            if let offset = start ?? committed[partition] {
                resolved.append((partition, offset))
            } else {
                resolved.append((partition, try await resetOffset(of: partition, for: "assign")))
            }
        }
        try checkOpen("assign")
        await fetcher.acquire()
        defer { fetcher.release() }
        try await client.assign(resolved)
        // What was fetched for an earlier assignment is not read any more.
        let kept = Set(partitions)
        fetcher.drop { !kept.contains($0) }
        trackOffsets { $0.forgetAll() }
        seekPositions = [:]
        subscription = .partitions(kept)
        subscribedAt = clock.now()
        logger.debug("assigned", metadata: ["kafka.partitions": "\(partitions.sorted().map(\.description).joined(separator: ","))"])
    }

    /// Where `autoOffsetReset` starts `partition` (its low or high watermark), as a concrete
    /// offset: a logical one is looked up by librdkafka after the assignment, and that
    /// look-up can overtake a `seek` made right after it.
    ///
    /// - Throws: ``KafkaError`` `autoOffsetReset` when the policy is `.none`.
    func resetOffset(of partition: TopicPartition, for operation: String) async throws -> Int64 {
        let (low, high) = try await client.watermarks(partition, timeout: configuration.connectionTimeout)
        switch configuration.autoOffsetReset {
        case .earliest: return low
        case .latest: return high
        case .none:
            throw KafkaError(
                code: .autoOffsetReset, message: "\(partition) has no committed offset and autoOffsetReset is .none",
                operation: operation)
        }
    }

    /// Stops reading what ``subscribe(_:)`` or ``assign(_:)-([TopicPartition])`` chose: a
    /// group member leaves the group's assignment (its partitions are revoked, which runs
    /// the revocation handler and, with auto-commit, commits what was finished), and what
    /// was fetched and not read is dropped. Records of the last ``poll(timeout:)`` count as
    /// processed. Subscribing or assigning again starts afresh.
    ///
    /// - Throws: ``WorkflowEventsError`` `readerBusy` while a reader reads (end its loop
    ///   first).
    public func unsubscribe() async throws {
        try checkOpen("unsubscribe")
        reclaimReleasedReaders()
        try checkNoReader("unsubscribe")
        guard let current = subscription else { return }
        storePolledOffsets()
        keepAlive?.cancel()
        keepAlive = nil
        await fetcher.acquire()
        fetcher.liftKeepAlivePause()
        do {
            if case .topics = current, configuration.groupID != nil {
                try await client.unsubscribe()
            } else {
                try await client.assign([])
            }
        } catch {
            fetcher.release()
            throw error
        }
        fetcher.release()
        subscription = nil
        // librdkafka revokes the group's assignment in its rebalance callback, which runs
        // inside a consume call: served here until the assignment is empty.
        let deadline = clock.now().advanced(by: configuration.assignmentTimeout)
        while !context.assignment.isEmpty, clock.now() < deadline, machine.isOpen {
            try await fill(until: min(deadline, clock.now().advanced(by: .milliseconds(100))))
            fetcher.buffer.destroyAll()
        }
        fetcher.destroyAll()
        seekPositions = [:]
        trackOffsets { $0.forgetAll() }
        if !context.assignment.isEmpty {
            logger.info(
                "unsubscribed, but librdkafka had not revoked the assignment within the assignment timeout",
                metadata: ["timeout": "\(configuration.assignmentTimeout)"])
        }
        logger.debug("unsubscribed")
    }

    /// Makes the first offset still in each partition (its low watermark) the next read.
    /// Waits for the assignment as ``seek(_:to:)-(_,Int64)`` does.
    public func seekToBeginning(_ partitions: [TopicPartition]) async throws {
        for partition in partitions {
            let (low, _) = try await client.watermarks(partition, timeout: configuration.connectionTimeout)
            try await seek(partition, to: low)
        }
    }

    /// Makes the end of each partition (the offset its next message will have) the next
    /// read: only messages written from now on are read. Waits for the assignment as
    /// ``seek(_:to:)-(_,Int64)`` does.
    public func seekToEnd(_ partitions: [TopicPartition]) async throws {
        for partition in partitions {
            let (_, high) = try await client.watermarks(partition, timeout: configuration.connectionTimeout)
            try await seek(partition, to: high)
        }
    }

    /// For each partition, the offset of its first message written at or after `time` (by
    /// the message timestamp), or its end offset when none is: where to start to replay
    /// from `time`. The cluster answers; nothing is read. Safe to call from a rebalance
    /// handler.
    ///
    /// - Throws: ``KafkaError`` when the cluster does not answer within the configuration's
    ///   `connectionTimeout` or a partition does not exist.
    public nonisolated func offsets(for time: Date, in partitions: [TopicPartition]) async throws -> [TopicPartition: Int64] {
        let milliseconds = Int64((time.timeIntervalSince1970 * 1000).rounded(.down))
        guard milliseconds >= 0 else {
            throw WorkflowEventsError(.invalidConfiguration, "offsets(for: \(time)): a time before 1970 has no messages")
        }
        let found = try await client.offsets(forTime: milliseconds, of: partitions, timeout: configuration.connectionTimeout)
        var offsets: [TopicPartition: Int64] = [:]
        for partition in partitions {
            if let offset = found[partition] ?? nil {
                offsets[partition] = offset
            } else {
                offsets[partition] = try await client.watermarks(partition, timeout: configuration.connectionTimeout).high
            }
        }
        return offsets
    }

    /// Makes each partition's first message written at or after `time` the next read (its
    /// end, when none is): "replay the last hour". Waits for the assignment as
    /// ``seek(_:to:)-(_,Int64)`` does.
    public func seek(_ partitions: [TopicPartition], to time: Date) async throws {
        let offsets = try await offsets(for: time, in: partitions)
        for partition in partitions {
            try await seek(partition, to: offsets[partition]!)
        }
    }
}
