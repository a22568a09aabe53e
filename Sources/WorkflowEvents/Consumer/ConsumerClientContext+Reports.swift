import Foundation
import Logging
import Metrics
import Synchronization

// What the client reports to the consumer (`ClientEvents`), besides rebalances: errors,
// commits, statistics, a direct assignment and the pauses.

extension ConsumerClientContext: ClientEvents {
    var assignment: Set<TopicPartition> { state.withLock { $0.assignment } }

    func assignedDirectly(_ partitions: [(TopicPartition, Int64)], with operations: some RebalanceOperations) {
        // The application's pauses made before the client knew these partitions.
        let userPaused = state.withLock { $0.userPaused }
        setPaused(true, partitions.map(\.0).filter { userPaused.contains($0) }, with: operations)
        state.withLock { state in
            state.assignment = Set(partitions.map(\.0))
            state.startOffsets = Dictionary(partitions, uniquingKeysWith: { _, last in last })
            state.generation += 1
        }
    }

    func setPaused(
        _ paused: Bool, _ partitions: [TopicPartition], decidedAt generation: Int?, with operations: some RebalanceOperations
    ) -> KafkaError? {
        // A pause decided before a rebalance is for partitions that may have moved since, and
        // the assignment has applied the application's pauses anew.
        if paused, let generation, state.withLock({ $0.generation }) != generation {
            logger.debug(
                "a pause decided before a rebalance was dropped",
                metadata: ["kafka.partitions": "\(partitions.map(\.description).joined(separator: ","))"])
            return nil
        }
        let error = setPaused(paused, partitions, with: operations)
        if let error {
            logger.info("the client refused to \(paused ? "pause" : "resume") partitions", metadata: ["error": "\(error)"])
        }
        return error
    }

    func errorReported(_ error: KafkaError, allBrokersDown: Bool) {
        let wentDown = state.withLock { state in
            state.lastError = error.description
            if error.isFatal { state.errorsToThrow.append(error) }
            guard allBrokersDown, state.unreachableSince == nil else { return false }
            state.unreachableSince = .now
            return true
        }
        if wentDown {
            metrics.brokersUnreachable.record(1)
            metrics.outages.increment()
            logger.warning("every broker is unreachable; reading resumes when one answers", metadata: ["error": "\(error)"])
        } else {
            logger.info("librdkafka reported an error", metadata: ["error": "\(error)"])
        }
    }

    func commitAnswered(_ error: KafkaError?, offsets: [(TopicPartition, Int64)], handingOver: Bool) {
        guard let error else {
            metrics.commits.increment()
            if !offsets.isEmpty {
                state.withLock { state in
                    for (partition, offset) in offsets { state.lastCommitted[partition] = offset }
                }
            }
            noteBrokerAnswers()
            return
        }
        metrics.commitFailures.increment()
        state.withLock { state in
            state.lastError = error.description
            state.commitFailures += 1
        }
        if handingOver {
            logger.info(
                "the commit before handing partitions over failed; their next owner may read some events again",
                metadata: ["error": "\(error)"])
        }
    }

    func statisticsReported(_ report: StatisticsReport) {
        if let lag = report.lag {
            state.withLock { $0.lag = lag }
            metrics.recordLag(lag)
        }
        if report.anyBrokerUp { noteBrokerAnswers() }
    }
}
