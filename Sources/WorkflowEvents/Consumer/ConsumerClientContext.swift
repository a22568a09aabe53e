import Foundation
import Logging
import Metrics
import Synchronization

// The state a consumer's client shares with the consumer, and what a rebalance does with
// it, whichever client (librdkafka's or the in-memory one) reports the rebalance.

/// What the client's callbacks report to the consumer, and what its rebalances read: the
/// same for librdkafka's client and the in-memory one. Callbacks run on librdkafka's threads
/// or on whichever thread is polling, so the state sits behind a mutex.
final class ConsumerClientContext: Sendable {
    struct State {
        var assignment: Set<TopicPartition> = []
        /// Where assigned partitions were told to start (an absolute offset, or librdkafka's
        /// logical beginning or end), when the assignment chose it rather than the commit.
        var startOffsets: [TopicPartition: Int64] = [:]
        /// Incremented on every assignment change.
        var generation = 0
        /// Seeks asked for before the partition was assigned: applied as its start offset.
        var pendingSeeks: [TopicPartition: Int64] = [:]
        /// Errors that must reach the caller (fatal ones), oldest first.
        var errorsToThrow: [KafkaError] = []
        var rebalances = 0
        /// Called (on librdkafka's thread) before partitions are revoked or lost, and
        /// returns once their owner is ready to hand them over.
        var revocationHook: (@Sendable (_ partitions: [TopicPartition], _ lost: Bool) -> Void)?
        /// Per-partition lag from librdkafka's last statistics.
        var lag: [TopicPartition: Int64] = [:]
        /// The last error librdkafka reported.
        var lastError: String?
        /// Since when no broker answers: librdkafka reported every broker down, and neither a
        /// message nor a statistics report with a connected broker came since.
        /// The next-offset last committed of each partition, as the broker took it.
        var lastCommitted: [TopicPartition: Int64] = [:]
        var unreachableSince: ContinuousClock.Instant?
        /// Commits the broker refused.
        var commitFailures = 0
        /// Partitions the application paused (`pause(_:)`): they stay paused when they are
        /// assigned again; every other partition is resumed on assignment.
        var userPaused: Set<TopicPartition> = []
        /// Whether the group has given this member its assignment (possibly empty: a
        /// standby), and has not taken it all back since.
        var isGroupMember = false
        /// The batch of the stream or callback loop reading, if one does: a revocation
        /// stores its finished events' offsets and takes back the rest.
        var readerBatch: ReaderBatch?
        /// The application's handlers (`onPartitionsRevoked`, `onPartitionsAssigned`), as the
        /// client wraps them: each returns once the handler has, or its time has run out.
        var revocationHandler: (@Sendable (_ partitions: [TopicPartition], _ lost: Bool) -> Void)?
        var assignmentHandler: (@Sendable (_ partitions: [TopicPartition]) -> [TopicPartition: Int64])?
    }

    let logger: Logger
    let metrics: ConsumerMetrics
    let listeners: RebalanceListeners
    let state = Mutex(State())
    /// What the readers took and finished: every stored offset comes from it.
    let offsets = Mutex(OffsetTracker())
    /// The partitions the client holds paused by this consumer's calls, changed only by
    /// `setPaused(_:_:with:)`, which holds the lock across the client's call.
    let pausedInClient = Mutex<Set<TopicPartition>>([])

    init(logger: Logger, metrics: ConsumerMetrics, listeners: RebalanceListeners) {
        self.logger = logger
        self.metrics = metrics
        self.listeners = listeners
    }
}

extension ConsumerClientContext {
    /// Notes that a broker answers (statistics show one connected, a commit was answered,
    /// the group assigned partitions; not a message, which may have waited in librdkafka's
    /// queue since before the outage): ends an outage, logging how long it lasted.
    func noteBrokerAnswers() {
        let since = state.withLock { state -> ContinuousClock.Instant? in
            defer { state.unreachableSince = nil }
            return state.unreachableSince
        }
        guard let since else { return }
        metrics.brokersUnreachable.record(0)
        logger.info("a broker answers again", metadata: ["unreachable_for": "\(ContinuousClock.now - since)"])
    }

}

// MARK: - Pausing

extension ConsumerClientContext {
    /// Pauses or resumes `partitions` in the client: the one place that does. A pause goes
    /// to the partitions not paused yet, and a resume only to the partitions paused here:
    /// librdkafka before 2.1 starts a partition's fetch again from where it was last
    /// assigned, paused or sought on every resume, also of a partition that is not paused
    /// (it moves the partition's version before it looks), which delivered again what had
    /// been read since. A partition the client does not know yet (not assigned) is not
    /// paused; the assignment pauses it if the application has.
    @discardableResult
    func setPaused(_ paused: Bool, _ partitions: [TopicPartition], with operations: some RebalanceOperations) -> KafkaError? {
        pausedInClient.withLock { held in
            let targets = partitions.filter { held.contains($0) != paused }
            guard !targets.isEmpty else { return nil }
            let (nowPaused, error) = operations.pause(paused, targets)
            if paused { held.formUnion(nowPaused) } else { held.subtract(targets) }
            return error
        }
    }
}

// MARK: - Rebalances

extension ConsumerClientContext {
    /// The group gives this member `changed`: the application's handler may choose start
    /// offsets, and seeks asked for before the assignment become start offsets too.
    func partitionsAssigned(_ changed: [TopicPartition], cooperative: Bool, with operations: some RebalanceOperations) {
        let handler = state.withLock { $0.assignmentHandler }
        let chosen = handler?(changed) ?? [:]
        let starts = state.withLock { state in
            var starts: [TopicPartition: Int64] = [:]
            for partition in changed {
                if let offset = state.pendingSeeks.removeValue(forKey: partition) ?? chosen[partition] {
                    starts[partition] = offset
                }
                state.startOffsets[partition] = starts[partition]
            }
            return starts
        }
        if let error = operations.assign(changed, startOffsets: starts, incremental: cooperative) {
            logger.info("assignment failed", metadata: ["error": "\(error)"])
        }
        let userPaused = state.withLock { state in
            if cooperative { state.assignment.formUnion(changed) } else { state.assignment = Set(changed) }
            state.generation += 1
            state.rebalances += 1
            state.isGroupMember = true
            return state.userPaused
        }
        // librdkafka keeps a partition's pause across its revocation and assignment: one
        // paused to bound memory (by `process` or a busy reader) would never resume. Only
        // the application's own pauses carry over, also those made before the client
        // knew the partition.
        setPaused(false, changed.filter { !userPaused.contains($0) }, with: operations)
        setPaused(true, changed.filter { userPaused.contains($0) }, with: operations)
        metrics.rebalances.increment()
        noteBrokerAnswers()
        listeners.yield(RebalanceEvent(kind: .assigned, partitions: changed.sorted()))
        logger.info(
            "partitions assigned",
            metadata: ["kafka.partitions": "\(changed.sorted().map(\.description).joined(separator: ","))"])
    }

    /// The group takes `changed` from this member (`lost`: it already gave them to
    /// another). In order: the reader's finished events stored, `process`'s hand-over, the
    /// application's handler, then the client gives them up.
    func partitionsRevoked(_ changed: [TopicPartition], lost: Bool, cooperative: Bool, with operations: some RebalanceOperations) {
        metrics.rebalances.increment()
        listeners.yield(RebalanceEvent(kind: lost ? .lost : .revoked, partitions: changed.sorted()))
        let (hook, batch) = state.withLock { ($0.revocationHook, $0.readerBatch) }
        // The reader's finished events of these partitions are stored before the revocation
        // commits (a lost partition's commit would be refused: nothing is stored then).
        batch?.revoke(Set(changed)) { finished in
            guard !lost else { return }
            offsets.withLock { tracker in
                for (partition, offset) in finished { tracker.finish(through: offset, of: partition) }
                operations.store(tracker.takeStores())
            }
        }
        hook?(changed, lost)
        // The application's handler commits what it processed (the finished events are
        // stored by now).
        state.withLock { $0.revocationHandler }?(changed, lost)
        offsets.withLock { $0.forget(changed) }
        // librdkafka 2.0.2 commits what is stored for the partitions it gives up, lost ones
        // too, and joins the group again only once the broker has refused that commit: after
        // an outage that outlasted the session, a second or more without reading.
        if lost { operations.discardStoredOffsets(changed) }
        if let error = operations.unassign(changed, incremental: cooperative) {
            logger.info("unassignment failed", metadata: ["error": "\(error)"])
        }
        state.withLock { state in
            if cooperative { state.assignment.subtract(changed) } else { state.assignment = [] }
            for partition in changed { state.startOffsets[partition] = nil }
            if !cooperative || lost { state.isGroupMember = false }
            state.generation += 1
            state.rebalances += 1
        }
        logger.info(
            lost ? "partitions lost" : "partitions revoked",
            metadata: ["kafka.partitions": "\(changed.sorted().map(\.description).joined(separator: ","))"])
    }

    /// The rebalance failed: the client gives up its whole assignment.
    func rebalanceFailed(_ error: KafkaError, with operations: some RebalanceOperations) {
        _ = operations.unassign([], incremental: false)
        state.withLock { state in
            state.assignment = []
            state.isGroupMember = false
            state.generation += 1
        }
        logger.info("rebalance failed", metadata: ["error": "\(error)"])
    }
}
