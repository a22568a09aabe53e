internal import CRDKafka
import Dispatch
import Foundation
import Logging
import Metrics
import Synchronization

// librdkafka's callbacks (rebalance, log, error, commit, statistics), the context they write
// to, and every pause and resume of the consumer.

/// What librdkafka's callbacks report to the consumer. Callbacks run on librdkafka's threads
/// or on whichever thread is polling, so the state sits behind a mutex.
final class RDKafkaCallbackContext: Sendable {
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
    /// The partitions librdkafka holds paused by this consumer's calls, changed only by
    /// `setPaused(_:_:handle:)`, which holds the lock across the call to librdkafka.
    let pausedInLibrdkafka = Mutex<Set<TopicPartition>>([])

    init(logger: Logger, metrics: ConsumerMetrics, listeners: RebalanceListeners) {
        self.logger = logger
        self.metrics = metrics
        self.listeners = listeners
    }
}

// MARK: - Pausing

extension RDKafkaCallbackContext {
    /// Pauses or resumes `partitions` in librdkafka: the one place that does. A pause goes
    /// to the partitions not paused yet, and a resume only to the partitions paused here:
    /// librdkafka before 2.1 starts a partition's fetch again from where it was last
    /// assigned, paused or sought on every resume, also of a partition that is not paused
    /// (it moves the partition's version before it looks), which delivered again what had
    /// been read since. A partition librdkafka does not know yet (not assigned) is not
    /// paused; the assignment pauses it if the application has.
    @discardableResult
    func setPaused(_ paused: Bool, _ partitions: [TopicPartition], handle: OpaquePointer) -> rd_kafka_resp_err_t {
        pausedInLibrdkafka.withLock { held in
            let targets = partitions.filter { held.contains($0) != paused }
            guard !targets.isEmpty else { return RD_KAFKA_RESP_ERR_NO_ERROR }
            return withPartitionList(targets.map { ($0, RDKafkaOffset.invalid) }) { list in
                guard paused else {
                    held.subtract(targets)
                    return rd_kafka_resume_partitions(handle, list)
                }
                let err = rd_kafka_pause_partitions(handle, list)
                for (partition, _, error) in entries(of: list) where error == RD_KAFKA_RESP_ERR_NO_ERROR {
                    held.insert(partition)
                }
                return err
            }
        }
    }
}

// MARK: - Callbacks

func context(of handle: OpaquePointer?) -> RDKafkaCallbackContext? {
    guard let handle, let opaque = rd_kafka_opaque(handle) else { return nil }
    return Unmanaged<RDKafkaCallbackContext>.fromOpaque(opaque).takeUnretainedValue()
}

let rebalanceCallback:
    @convention(c) (
        OpaquePointer?, rd_kafka_resp_err_t, UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?, UnsafeMutableRawPointer?
    ) -> Void = { handle, err, partitions, opaque in
        guard let handle, let partitions, let opaque else { return }
        let context = Unmanaged<RDKafkaCallbackContext>.fromOpaque(opaque).takeUnretainedValue()
        // NULL before the group has chosen a protocol (a consumer closed before it joined, or one
        // with a hand-made assignment): eager, as rd_kafka_assign expects then.
        let protocolName: UnsafePointer<CChar>? = rd_kafka_rebalance_protocol(handle)
        let cooperative = protocolName.map { String(cString: $0) } == "COOPERATIVE"
        let changed = entries(of: partitions).map(\.0)
        switch err {
        case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
            // The application's handler may choose start offsets; seeks asked for before the
            // assignment become start offsets too.
            let handler = context.state.withLock { $0.assignmentHandler }
            let chosen = handler?(changed) ?? [:]
            context.state.withLock { state in
                for index in 0..<Int(partitions.pointee.cnt) {
                    let element = partitions.pointee.elems[index]
                    let key = TopicPartition(topic: String(cString: element.topic), partition: element.partition)
                    if let offset = state.pendingSeeks.removeValue(forKey: key) ?? chosen[key] {
                        partitions.pointee.elems[index].offset = offset
                        state.startOffsets[key] = offset
                    } else {
                        state.startOffsets[key] = nil
                    }
                }
            }
            if cooperative {
                if let error = rd_kafka_incremental_assign(handle, partitions) {
                    let failure = KafkaError(consuming: error, operation: "incremental assign")
                    context.logger.info("assignment failed", metadata: ["error": "\(failure)"])
                }
            } else {
                let result = rd_kafka_assign(handle, partitions)
                if result != RD_KAFKA_RESP_ERR_NO_ERROR {
                    context.logger.info("assignment failed", metadata: ["error": "\(KafkaError(result, operation: "assign"))"])
                }
            }
            let userPaused = context.state.withLock { state in
                if cooperative { state.assignment.formUnion(changed) } else { state.assignment = Set(changed) }
                state.generation += 1
                state.rebalances += 1
                state.isGroupMember = true
                return state.userPaused
            }
            // librdkafka keeps a partition's pause across its revocation and assignment: one
            // paused to bound memory (by `process` or a busy reader) would never resume. Only
            // the application's own pauses carry over, also those made before librdkafka
            // knew the partition.
            context.setPaused(false, changed.filter { !userPaused.contains($0) }, handle: handle)
            context.setPaused(true, changed.filter { userPaused.contains($0) }, handle: handle)
            context.metrics.rebalances.increment()
            context.noteBrokerAnswers()
            context.listeners.yield(RebalanceEvent(kind: .assigned, partitions: changed.sorted()))
            context.logger.debug(
                "partitions assigned",
                metadata: ["kafka.partitions": "\(changed.sorted().map(\.description).joined(separator: ","))"])
        case RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS:
            let lost = rd_kafka_assignment_lost(handle) != 0
            context.metrics.rebalances.increment()
            context.listeners.yield(RebalanceEvent(kind: lost ? .lost : .revoked, partitions: changed.sorted()))
            let (hook, batch) = context.state.withLock { ($0.revocationHook, $0.readerBatch) }
            // The reader's finished events of these partitions are stored before the revocation
            // commits (a lost partition's commit would be refused: nothing is stored then).
            batch?.revoke(Set(changed)) { finished in
                guard !lost else { return }
                let last = lastOffsets(of: finished)
                context.offsets.withLock { tracker in
                    for (partition, offset) in last { tracker.finish(through: offset, of: partition) }
                    storeOffsets(handle, tracker.takeStores())
                }
            }
            hook?(changed, lost)
            // The application's handler commits what it processed (the finished events are
            // stored by now).
            context.state.withLock { $0.revocationHandler }?(changed, lost)
            context.offsets.withLock { $0.forget(changed) }
            if cooperative {
                if let error = rd_kafka_incremental_unassign(handle, partitions) {
                    let failure = KafkaError(consuming: error, operation: "incremental unassign")
                    context.logger.info("unassignment failed", metadata: ["error": "\(failure)"])
                }
            } else {
                rd_kafka_assign(handle, nil)
            }
            context.state.withLock { state in
                if cooperative { state.assignment.subtract(changed) } else { state.assignment = [] }
                for partition in changed { state.startOffsets[partition] = nil }
                if !cooperative || lost { state.isGroupMember = false }
                state.generation += 1
                state.rebalances += 1
            }
            context.logger.debug(
                lost ? "partitions lost" : "partitions revoked",
                metadata: ["kafka.partitions": "\(changed.sorted().map(\.description).joined(separator: ","))"])
        default:
            rd_kafka_assign(handle, nil)
            context.state.withLock { state in
                state.assignment = []
                state.isGroupMember = false
                state.generation += 1
            }
            context.logger.info("rebalance failed", metadata: ["error": "\(KafkaError(err, operation: "rebalance"))"])
        }
    }

let logCallback: @convention(c) (OpaquePointer?, Int32, UnsafePointer<CChar>?, UnsafePointer<CChar>?) -> Void = {
    handle, level, facility, message in
    guard let context = context(of: handle), let message else { return }
    RDKafkaConfig.forwardLog(context.logger, level: level, facility: facility, message: message)
}

let errorCallback: @convention(c) (OpaquePointer?, Int32, UnsafePointer<CChar>?, UnsafeMutableRawPointer?) -> Void = {
    handle, code, reason, opaque in
    guard let handle, let opaque else { return }
    let context = Unmanaged<RDKafkaCallbackContext>.fromOpaque(opaque).takeUnretainedValue()
    let err = rd_kafka_resp_err_t(rawValue: code)
    var error: KafkaError
    if err == RD_KAFKA_RESP_ERR__FATAL {
        var text = [CChar](repeating: 0, count: 512)
        let underlying = rd_kafka_fatal_error(handle, &text, text.count)
        error = KafkaError(underlying, operation: "consume", message: RDKafkaConfig.cText(text), isFatal: true)
    } else {
        error = KafkaError(err, operation: "consume", message: reason.map { String(cString: $0) })
    }
    let wentDown = context.state.withLock { state in
        state.lastError = error.description
        if error.isFatal { state.errorsToThrow.append(error) }
        guard err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN, state.unreachableSince == nil else { return false }
        state.unreachableSince = .now
        return true
    }
    if wentDown {
        context.metrics.brokersUnreachable.record(1)
        context.metrics.outages.increment()
        context.logger.warning("every broker is unreachable; reading resumes when one answers", metadata: ["error": "\(error)"])
    } else {
        context.logger.info("librdkafka reported an error", metadata: ["error": "\(error)"])
    }
}

extension RDKafkaCallbackContext {
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

let offsetCommitCallback:
    @convention(c) (
        OpaquePointer?, rd_kafka_resp_err_t, UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?, UnsafeMutableRawPointer?
    ) -> Void = { _, err, _, opaque in
        guard let opaque else { return }
        let context = Unmanaged<RDKafkaCallbackContext>.fromOpaque(opaque).takeUnretainedValue()
        if err == RD_KAFKA_RESP_ERR_NO_ERROR {
            context.metrics.commits.increment()
            context.noteBrokerAnswers()
        } else if err != RD_KAFKA_RESP_ERR__NO_OFFSET {
            context.metrics.commitFailures.increment()
            let error = KafkaError(err, operation: "commit")
            context.state.withLock { state in
                state.lastError = error.description
                state.commitFailures += 1
            }
        }
    }

let statisticsCallback: @convention(c) (OpaquePointer?, UnsafeMutablePointer<CChar>?, Int, UnsafeMutableRawPointer?) -> Int32 = {
    _, json, length, opaque in
    guard let json, let opaque else { return 0 }
    let context = Unmanaged<RDKafkaCallbackContext>.fromOpaque(opaque).takeUnretainedValue()
    guard let report = StatisticsReport(json: UnsafeRawBufferPointer(start: json, count: length)) else { return 0 }
    if let lag = report.lag {
        context.state.withLock { $0.lag = lag }
        context.metrics.recordLag(lag)
    }
    if report.anyBrokerUp { context.noteBrokerAnswers() }
    return 0  // librdkafka frees the JSON
}
