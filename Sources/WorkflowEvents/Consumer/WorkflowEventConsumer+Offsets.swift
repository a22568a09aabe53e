// Committing, seeking and asking where a partition stands.

import Foundation
import Logging
import Metrics
import Synchronization
import Tracing

extension WorkflowEventConsumer {
    /// Commits the offsets of everything delivered so far and waits for the broker to
    /// confirm. Called from a loop body (or a `consumeEvents` handler), it includes the event
    /// in hand, which that body has processed; a loop left with `break` or a throw, or a
    /// stream released, holds no event.
    ///
    /// - Throws: ``WorkflowEventsError`` `groupRequired` without a `groupID`; ``KafkaError``
    ///   when the broker refuses.
    public func commit() async throws {
        try checkOpen("commit")
        try checkGroup("commit")
        reclaimReleasedReaders()
        reading.batch?.withOffsetsForCommit { finish(lastOffsets: $0) }
        storePolledOffsets()
        try await client.commit(nil)
    }

    /// Commits the given next-offsets (Kafka's convention: the offset of the next record to
    /// read) and waits for the broker to confirm.
    public func commit(_ offsets: [TopicPartition: Int64]) async throws {
        try checkOpen("commit")
        try checkGroup("commit")
        guard !offsets.isEmpty else { return }
        let entries = offsets.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        trackOffsets { tracker in
            for (partition, next) in entries { tracker.override(partition, next: next) }
        }
        try await client.commit(entries)
    }

    /// The committed next-offset of each partition given, nil where the group has none.
    public func committed(_ partitions: [TopicPartition]) async throws -> [TopicPartition: Int64] {
        try checkOpen("committed")
        try checkGroup("committed")
        return try await client.committed(partitions, timeout: configuration.connectionTimeout)
    }

    /// The end offset, committed offset and lag of each partition of `topics`, for this
    /// consumer's group; the consumer need not be subscribed, nor a member of the group.
    ///
    /// - Throws: ``WorkflowEventsError`` `groupRequired` without a `groupID`; ``KafkaError``
    ///   when a topic does not exist or the cluster does not answer within the
    ///   configuration's `connectionTimeout`.
    public func lag(topics: [String]) async throws -> [PartitionLag] {
        try checkOpen("lag")
        try checkGroup("lag")
        try await checkConnection(for: "lag of \(topics)")
        let partitions = try await client.partitions(of: topics, timeout: configuration.connectionTimeout)
        return try await lag(of: partitions)
    }

    /// The end offset, committed offset and lag of each partition assigned to this consumer.
    public func lag() async throws -> [PartitionLag] {
        try checkOpen("lag")
        try checkGroup("lag")
        return try await lag(of: context.assignment.sorted())
    }

    func lag(of partitions: [TopicPartition]) async throws -> [PartitionLag] {
        let committed = try await client.committed(partitions, timeout: configuration.connectionTimeout)
        var result: [PartitionLag] = []
        result.reserveCapacity(partitions.count)
        for partition in partitions.sorted() {
            let (low, high) = try await client.watermarks(partition, timeout: configuration.connectionTimeout)
            result.append(
                PartitionLag(partition: partition, committedOffset: committed[partition], lowWatermark: low, endOffset: high))
        }
        return result
    }

    /// The names of the cluster's topics, Kafka's internal ones (`__consumer_offsets`...) left out.
    public func topics() async throws -> [String] {
        try checkOpen("topics")
        try await checkConnection(for: "list topics")
        return try await client.topicNames(timeout: configuration.connectionTimeout).filter { !$0.hasPrefix("__") }.sorted()
    }

    /// Makes `offset` the next record read from `partition`.
    ///
    /// Right after ``subscribe(_:)`` this waits, up to the configuration's
    /// `assignmentTimeout`, for the group to assign the partition.
    ///
    /// - Throws: ``WorkflowEventsError`` `partitionNotAssigned` when the group gives the
    ///   partition to another member or does not assign it in time.
    public func seek(_ partition: TopicPartition, to offset: Int64) async throws {
        try checkOpen("seek")
        try checkNotProcessing("seek")
        reclaimReleasedReaders()
        guard offset >= 0 else {
            throw WorkflowEventsError(.invalidConfiguration, "seek to \(offset) on \(partition): an offset is never negative")
        }
        let appliedAtAssignment = try await waitForAssignment(of: partition, pendingSeek: offset)
        if !appliedAtAssignment {
            // The seek owns the fetch path while librdkafka moves the position: a fetch of the
            // keep-alive meanwhile would take a message from the old position.
            await fetcher.acquire()
            if let batch = reading.batch {
                // Events finished before the seek count; the one in hand, from before it, not.
                batch.withFinished { finish(lastOffsets: $0) }
                putBack(batch.cut(sought: partition))
            }
            // Nothing taken before the seek is stored any more (records of a `poll`, the event
            // in hand): the partition starts again where it was sought.
            trackOffsets { $0.forget([partition]) }
            fetcher.drop { $0 == partition }
            do {
                try await client.seek(partition, to: offset, timeout: configuration.connectionTimeout)
            } catch {
                fetcher.release()
                // A rebalance or the close took the partition while the seek was on its way.
                if !machine.isOpen { throw WorkflowEventsError(.clientClosed, "cannot seek: the consumer is closed; create a new one") }
                if !context.assignment.contains(partition) {
                    throw WorkflowEventsError(
                        .partitionNotAssigned,
                        "cannot seek \(partition) to \(offset): the group took the partition from this consumer while the seek ran")
                }
                throw error
            }
            fetcher.release()
        }
        seekPositions[partition] = offset
        logger.debug("seek", metadata: Self.coordinates(partition.topic, partition.partition, offset))
    }

    /// The offset of the next record to deliver from `partition`, where known without asking
    /// a broker: the reader's next event, a fetched message, a seek, librdkafka's position.
    func nextOffsetKnown(_ partition: TopicPartition) throws -> Int64? {
        if let offset = reading.batch?.firstWaitingOffset(of: partition) ?? fetcher.firstOffset(of: partition) ?? seekPositions[partition] {
            return offset
        }
        return try client.position(partition)
    }

    /// The offset of the next record this consumer will deliver from `partition`.
    ///
    /// Before anything was read it is the committed offset, or else where the reset policy
    /// starts. Waits for the assignment as ``seek(_:to:)-(_,Int64)`` does.
    public func position(_ partition: TopicPartition) async throws -> Int64 {
        try checkOpen("position")
        try checkNotProcessing("ask for a position")
        reclaimReleasedReaders()
        _ = try await waitForAssignment(of: partition, pendingSeek: nil)
        await fetcher.absorbReadAhead()
        if let offset = try nextOffsetKnown(partition) { return offset }
        if configuration.groupID != nil,
            let offset = try await client.committed([partition], timeout: configuration.connectionTimeout)[partition]
        {
            return offset
        }
        return try await resetOffset(of: partition, for: "position")
    }

    /// Polls until `partition` is assigned. Returns whether a pending seek was applied as
    /// the partition's start offset by the assignment itself.
    func waitForAssignment(of partition: TopicPartition, pendingSeek: Int64?) async throws -> Bool {
        if subscription == nil {
            throw WorkflowEventsError(
                .partitionNotAssigned, "\(partition) is not assigned: call subscribe(_:) before seek or position")
        }
        let deadline = clock.now().advanced(by: configuration.assignmentTimeout)
        var registered = false
        while true {
            let (isAssigned, assignment, stillPending) = context.state.withLock { state in
                (state.assignment.contains(partition), state.assignment, state.pendingSeeks[partition] != nil)
            }
            if isAssigned {
                if registered {
                    if stillPending {
                        context.state.withLock { $0.pendingSeeks[partition] = nil }
                        return false
                    }
                    return true
                }
                return false
            }
            if !assignment.isEmpty {
                // The group has given this member its share, and this partition is not in it.
                clearPendingSeek(partition, registered)
                let owned = assignment.filter { $0.topic == partition.topic }.map(\.partition).sorted()
                throw WorkflowEventsError(
                    .partitionNotAssigned,
                    "\(partition) is assigned to another member of group '\(configuration.groupID ?? "")'; this consumer has partitions \(owned) of '\(partition.topic)'"
                )
            }
            if clock.now() >= deadline {
                clearPendingSeek(partition, registered)
                throw WorkflowEventsError(
                    .partitionNotAssigned,
                    "\(partition) was not assigned to this consumer within \(configuration.assignmentTimeout)")
            }
            if let pendingSeek, !registered {
                context.state.withLock { $0.pendingSeeks[partition] = pendingSeek }
                registered = true
            }
            try checkOpen("wait for the assignment of \(partition)")
            try await fill(until: min(deadline, clock.now().advanced(by: .milliseconds(200))))
            if let error = takeErrorToThrow() { throw error }
        }
    }

    func clearPendingSeek(_ partition: TopicPartition, _ registered: Bool) {
        if registered { context.state.withLock { $0.pendingSeeks[partition] = nil } }
    }
}
