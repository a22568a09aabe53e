// Handlers the application installs, which a rebalance waits for.

import Dispatch
import Foundation
import Logging
import Synchronization

/// Partitions about to be taken from this consumer, as a revocation handler sees them.
///
/// The handler runs before the partitions go, and the rebalance waits for it (up to the
/// timeout it was installed with): it can commit what the application has processed of
/// them, so that their next owner starts right after it.
public struct PartitionsRevoked: Sendable {
    /// The partitions taken (with cooperative-sticky assignment, only those that move).
    public let partitions: [TopicPartition]
    /// True when they were lost (the member was expelled from the group): another member
    /// may already own them, and nothing can be committed for them.
    public let isLost: Bool
    let committer: RebalanceCommitter

    /// Commits the next-offsets given (Kafka's convention: the offset of the next record to
    /// read), typically how far the application has processed each revoked partition, and
    /// waits for the broker to confirm.
    ///
    /// - Throws: ``KafkaError`` when the broker refuses (some brokers refuse commits while a
    ///   rebalance is in progress, with `REBALANCE_IN_PROGRESS`: the next owner then starts
    ///   at the last commit); ``WorkflowEventsError`` `partitionNotAssigned` when the
    ///   partitions were lost, or when the handler's time ran out and they were handed over.
    public func commit(_ offsets: [TopicPartition: Int64]) async throws {
        try await committer.commit(offsets.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }, lost: isLost)
    }

    /// Commits what this consumer's readers finished of the revoked partitions: the events a
    /// stream or callback loop finished, the records of `poll` before the last one, the
    /// events `process` handled in an unbroken run. Nothing when nothing was finished.
    public func commit() async throws {
        try await committer.commitFinished(partitions, lost: isLost)
    }
}

/// Partitions just given to this consumer, as an assignment handler sees them: it can
/// choose where reading starts (from an offset kept outside Kafka, say).
public final class PartitionsAssigned: Sendable {
    /// The partitions given (with cooperative-sticky assignment, only the new ones).
    public let partitions: [TopicPartition]
    private let starts = Mutex<[TopicPartition: Int64]>([:])

    init(partitions: [TopicPartition]) {
        self.partitions = partitions
    }

    /// Makes `offset` the first record read from `partition`, instead of the committed
    /// offset (or the reset policy's start).
    ///
    /// - Throws: ``WorkflowEventsError`` `partitionNotAssigned` when `partition` is not
    ///   among ``partitions``; `invalidConfiguration` for a negative offset.
    public func start(_ partition: TopicPartition, at offset: Int64) throws {
        guard partitions.contains(partition) else {
            throw WorkflowEventsError(
                .partitionNotAssigned,
                "cannot start \(partition) at \(offset): it is not among the partitions assigned now (\(partitions.sorted().map(\.description).joined(separator: ", ")))"
            )
        }
        guard offset >= 0 else {
            throw WorkflowEventsError(.invalidConfiguration, "cannot start \(partition) at \(offset): an offset is never negative")
        }
        starts.withLock { $0[partition] = offset }
    }

    /// The start offsets chosen.
    var startOffsets: [TopicPartition: Int64] { starts.withLock { $0 } }
}

/// Commits for a revocation handler while the rebalance waits for it, and refuses once the
/// handler's time has run out (the partitions are handed over then: a later commit could
/// overwrite their next owner's). A commit already on its way when the time runs out is
/// waited for before the hand-over goes on (`close(waitingUpTo:)`), so that none reaches
/// the broker after it.
final class RebalanceCommitter: Sendable {
    private struct State {
        var open = true
        var inFlight = 0
        /// Signalled, once per closer waiting, when the last commit in flight has ended.
        var drained: DispatchSemaphore?
        var waiting = 0
    }

    private let state = Mutex(State())
    private let commitOffsets: @Sendable ([(TopicPartition, Int64)]) async throws -> Void
    private let finished: @Sendable ([TopicPartition]) -> [(TopicPartition, Int64)]

    init(
        commit: @escaping @Sendable ([(TopicPartition, Int64)]) async throws -> Void,
        finished: @escaping @Sendable ([TopicPartition]) -> [(TopicPartition, Int64)]
    ) {
        self.commitOffsets = commit
        self.finished = finished
    }

    /// The partitions are handed over: no commit starts any more, and the calling thread (a
    /// librdkafka thread, never the cooperative pool) waits up to `timeout` for the commits
    /// already started. Returns false when one was still running after it.
    @discardableResult
    func close(waitingUpTo timeout: Duration) -> Bool {
        let drained: DispatchSemaphore? = state.withLock { state in
            state.open = false
            guard state.inFlight > 0 else { return nil }
            let drained = state.drained ?? DispatchSemaphore(value: 0)
            state.drained = drained
            state.waiting += 1
            return drained
        }
        guard let drained else { return true }
        if drained.wait(timeout: .now() + .milliseconds(Int(max(0, timeout.milliseconds)))) == .success { return true }
        state.withLock { state in if state.drained === drained { state.waiting -= 1 } }
        return false
    }

    /// Whether a `close` waits for commits in flight.
    var isWaitingForCommits: Bool { state.withLock { $0.waiting > 0 } }

    func commit(_ offsets: [(TopicPartition, Int64)], lost: Bool) async throws {
        if lost {
            throw WorkflowEventsError(
                .partitionNotAssigned, "cannot commit \(offsets.map(\.0)): the partitions were lost, and another member may own them")
        }
        let admitted = state.withLock { state in
            guard state.open else { return false }
            state.inFlight += 1
            return true
        }
        guard admitted else {
            throw WorkflowEventsError(
                .partitionNotAssigned,
                "cannot commit \(offsets.map(\.0)): the partitions were handed over (the revocation handler returned, or its time ran out)")
        }
        defer { commitEnded() }
        guard !offsets.isEmpty else { return }
        try await commitOffsets(offsets)
    }

    private func commitEnded() {
        let (drained, waiting): (DispatchSemaphore?, Int) = state.withLock { state in
            state.inFlight -= 1
            guard state.inFlight == 0, let drained = state.drained else { return (nil, 0) }
            defer {
                state.drained = nil
                state.waiting = 0
            }
            return (drained, state.waiting)
        }
        for _ in 0..<waiting { drained?.signal() }
    }

    func commitFinished(_ partitions: [TopicPartition], lost: Bool) async throws {
        try await commit(finished(partitions), lost: lost)
    }
}

extension WorkflowEventConsumer {
    /// Installs `handler`, which runs each time partitions are about to be taken from this
    /// consumer (a rebalance, an `unsubscribe`, the close) and which the hand-over waits
    /// for, up to `timeout`: there it commits what the application processed, with
    /// ``PartitionsRevoked/commit(_:)`` or ``PartitionsRevoked/commit()``, so that the next
    /// owner starts right after it. A later call replaces the handler; nil removes it.
    ///
    /// The handler runs in a task of its own while librdkafka's thread waits for it (never
    /// a thread of Swift's cooperative pool). It must not call the consumer's own methods:
    /// the consumer is inside librdkafka's rebalance until the handler returns. After
    /// `timeout` it is cancelled, the hand-over goes on, and its commits are refused. A
    /// handler that throws is logged; the hand-over goes on.
    public nonisolated func onPartitionsRevoked(
        timeout: Duration = .seconds(10), _ handler: (@Sendable (PartitionsRevoked) async throws -> Void)?
    ) {
        setRevocationHandler(handler.map { handler in (timeout, handler) })
    }

    /// Installs `handler`, which runs each time partitions are given to this consumer,
    /// before reading them starts, and which can choose where each starts
    /// (``PartitionsAssigned/start(_:at:)``). The assignment waits for it up to `timeout`.
    /// The rules of ``onPartitionsRevoked(timeout:_:)`` apply. A later call replaces the
    /// handler; nil removes it.
    public nonisolated func onPartitionsAssigned(
        timeout: Duration = .seconds(10), _ handler: (@Sendable (PartitionsAssigned) async throws -> Void)?
    ) {
        setAssignmentHandler(handler.map { handler in (timeout, handler) })
    }
}

extension WorkflowEventConsumer {
    /// Wraps the application's revocation handler for librdkafka's rebalance callback.
    nonisolated func setRevocationHandler(_ installed: (timeout: Duration, handler: @Sendable (PartitionsRevoked) async throws -> Void)?) {
        var wrapped: (@Sendable ([TopicPartition], Bool) -> Void)?
        if let (timeout, handler) = installed {
            wrapped = { [weak self] partitions, lost in
                self?.runRevocationHandler(handler, timeout: timeout, partitions: partitions, lost: lost)
            }
        }
        context.state.withLock { $0.revocationHandler = wrapped }
    }

    private nonisolated func runRevocationHandler(
        _ handler: @escaping @Sendable (PartitionsRevoked) async throws -> Void, timeout: Duration, partitions: [TopicPartition], lost: Bool
    ) {
        let committer = RebalanceCommitter(
            commit: { [weak self] offsets in
                guard let self else { return }
                try await self.client.commit(offsets, forRebalanceHandler: true)
            },
            finished: { [weak self] partitions in
                guard let self else { return [] }
                return self.recordOffsets { tracker in
                    partitions.compactMap { partition in tracker.committable(of: partition).map { (partition, $0) } }
                }
            })
        let revoked = PartitionsRevoked(partitions: partitions, isLost: lost, committer: committer)
        let logger = context.logger
        // Commits the handler started land before the hand-over, within a second window of
        // the handler's timeout (once: on the timeout, or when the handler returned).
        var handedOver = false
        func handOver() {
            guard !handedOver else { return }
            handedOver = true
            if !committer.close(waitingUpTo: timeout) {
                logger.warning(
                    "a commit of the revocation handler did not end within \(timeout) of the hand-over; the partitions are handed over without it",
                    metadata: ["timeout": "\(timeout)"])
            }
        }
        waitForRebalanceHandler(
            timeout: timeout, logger: logger, kind: lost ? "lost-partitions" : "revocation", beforeCancelling: handOver
        ) {
            try await handler(revoked)
        }
        handOver()
    }

    /// Wraps the application's assignment handler for librdkafka's rebalance callback.
    nonisolated func setAssignmentHandler(_ installed: (timeout: Duration, handler: @Sendable (PartitionsAssigned) async throws -> Void)?) {
        var wrapped: (@Sendable ([TopicPartition]) -> [TopicPartition: Int64])?
        if let (timeout, handler) = installed {
            let logger = context.logger
            wrapped = { partitions in
                let assigned = PartitionsAssigned(partitions: partitions)
                waitForRebalanceHandler(timeout: timeout, logger: logger, kind: "assignment") {
                    try await handler(assigned)
                }
                return assigned.startOffsets
            }
        }
        context.state.withLock { $0.assignmentHandler = wrapped }
    }
}

/// Runs an application's rebalance handler in a task of its own and blocks the calling
/// thread, librdkafka's (the poll or operations queue, never the cooperative pool), until it
/// returns or `timeout` passes; then it is cancelled and the rebalance goes on.
private func waitForRebalanceHandler(
    timeout: Duration, logger: Logger, kind: String, beforeCancelling: () -> Void = {},
    _ body: @escaping @Sendable () async throws -> Void
) {
    let done = DispatchSemaphore(value: 0)
    let failure = Mutex<(any Error)?>(nil)
    // Unstructured: librdkafka's callback has no task to be a child of; the callback waits
    // for it (or cancels it), so it does not outlive the rebalance unnoticed.
    let task = Task {
        do {
            try await body()
        } catch {
            failure.withLock { $0 = error }
        }
        done.signal()
    }
    let milliseconds = Int(max(0, timeout.milliseconds))
    if done.wait(timeout: .now() + .milliseconds(milliseconds)) == .timedOut {
        // What the handler does once cancelled is refused from here on.
        beforeCancelling()
        task.cancel()
        logger.warning(
            "the \(kind) handler did not return within \(timeout): cancelled, and the rebalance goes on without it",
            metadata: ["timeout": "\(timeout)"])
        return
    }
    if let error = failure.withLock({ $0 }) {
        logger.info("the \(kind) handler threw; the rebalance goes on", metadata: ["error": "\(error)"])
    }
}
