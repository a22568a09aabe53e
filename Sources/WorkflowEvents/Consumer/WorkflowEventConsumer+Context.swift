import Synchronization

// What the consumer reads and decides through the context its client reports to: the
// assignment, the offsets it stores (through the one tracker), and the errors to throw.
// Nonisolated: `process`'s loop and workers use them too.

extension WorkflowEventConsumer {

    /// Assignments so far: a rebalance changes it.
    nonisolated var assignmentGeneration: Int { context.state.withLock { $0.generation } }

    /// Updates the offset tracker with `body`, then stores the offsets that moved, under the
    /// tracker's lock: the one way offsets are stored, so that they are stored in the order
    /// the tracker decided them.
    @discardableResult
    nonisolated func trackOffsets<T>(_ body: (inout OffsetTracker) -> T) -> T {
        let client = self.client
        return context.offsets.withLock { tracker in
            let result = body(&tracker)
            let entries = tracker.takeStores()
            if !entries.isEmpty { client.store(entries) }
            return result
        }
    }

    /// Updates the offset tracker without storing: the next `trackOffsets` stores what moved.
    /// For `process`, which notes each record taken and finished and stores once its loop
    /// has caught up.
    @discardableResult
    nonisolated func recordOffsets<T>(_ body: (inout OffsetTracker) -> T) -> T {
        context.offsets.withLock { body(&$0) }
    }

    /// The records of `messages`, taken in order, are finished: the offset after the last
    /// one of each partition is stored.
    nonisolated func finish(_ messages: [FetchedMessage]) {
        guard !messages.isEmpty else { return }
        finish(lastOffsets: lastOffsets(of: messages[...]))
    }

    /// Every event of each partition through its offset is finished.
    nonisolated func finish(lastOffsets last: [(TopicPartition, Int64)]) {
        guard !last.isEmpty else { return }
        trackOffsets { tracker in
            for (partition, offset) in last { tracker.finish(through: offset, of: partition) }
        }
    }

    nonisolated func takeErrorToThrow() -> KafkaError? {
        context.state.withLock { state in
            state.errorsToThrow.isEmpty ? nil : state.errorsToThrow.removeFirst()
        }
    }
}
