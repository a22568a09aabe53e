internal import CRDKafka
import DequeModule
import Dispatch
import Foundation
import Logging
import Metrics
import Synchronization

// Everything the consumer does with librdkafka, and the only file that sees its consumer
// pointers. Calls that block (a poll with a timeout, a synchronous commit, a metadata or
// watermark request, close) run on two private serial dispatch queues, never on Swift's
// cooperative pool: `pollQueue` waits for messages, `operationsQueue` runs everything else,
// so that a commit never waits behind a poll.

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

/// One message fetched from librdkafka and owned by the caller until `destroy()`.
/// The pointer stays in this file: outside it the message is read through its accessors.
struct RDKafkaMessage: @unchecked Sendable {
    // Safe to send: the message is owned by exactly one holder (the consumer actor) and
    // librdkafka's message objects may be read and destroyed from any thread.
    fileprivate let pointer: UnsafeMutablePointer<rd_kafka_message_t>
    /// The value validated ahead, on the poll queue (nil when not done yet, and for
    /// errors and tombstones).
    var decoded: Result<WorkflowEvent, WorkflowEventValidationError>?

    fileprivate init(pointer: UnsafeMutablePointer<rd_kafka_message_t>) {
        self.pointer = pointer
    }

    var partition: Int32 { pointer.pointee.partition }
    var offset: Int64 { pointer.pointee.offset }
    var isError: Bool { pointer.pointee.err != RD_KAFKA_RESP_ERR_NO_ERROR }
    var isTombstone: Bool { pointer.pointee.payload == nil }
    var valueLength: Int { pointer.pointee.len }

    var topic: String {
        guard let topic = pointer.pointee.rkt else { return "" }
        return String(cString: rd_kafka_topic_name(topic))
    }

    /// The error this message carries, if it is an error event rather than a record.
    func error(operation: String) -> KafkaError? {
        let err = pointer.pointee.err
        guard err != RD_KAFKA_RESP_ERR_NO_ERROR else { return nil }
        let detail = rd_kafka_message_errstr(pointer).map { String(cString: $0) }
        return KafkaError(err, operation: operation, message: detail)
    }

    /// Reads the value in place, without copying it.
    func withValue<T>(_ body: (UnsafeRawBufferPointer) throws -> T) rethrows -> T {
        try body(UnsafeRawBufferPointer(start: pointer.pointee.payload, count: pointer.pointee.len))
    }

    var value: [UInt8]? {
        guard let payload = pointer.pointee.payload else { return nil }
        return Array(UnsafeRawBufferPointer(start: payload, count: pointer.pointee.len))
    }

    var key: [UInt8]? {
        guard let key = pointer.pointee.key else { return nil }
        return Array(UnsafeRawBufferPointer(start: key, count: pointer.pointee.key_len))
    }

    var headers: [KafkaHeader] {
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
        var type = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
        let milliseconds = rd_kafka_message_timestamp(pointer, &type)
        guard type != RD_KAFKA_TIMESTAMP_NOT_AVAILABLE, milliseconds >= 0 else { return nil }
        return Date(timeIntervalSince1970: Double(milliseconds) / 1000)
    }

    var record: ConsumerRecord {
        ConsumerRecord(
            topic: topic, partition: partition, offset: offset, key: key, value: value,
            headers: headers, timestamp: timestamp)
    }

    func destroy() {
        rd_kafka_message_destroy(pointer)
    }
}

/// Messages fetched from librdkafka and not yet delivered, oldest first.
struct RDKafkaMessageBuffer {
    private var messages = Deque<RDKafkaMessage>()

    var count: Int { messages.count }
    var isEmpty: Bool { messages.isEmpty }

    mutating func append(_ batch: [RDKafkaMessage]) {
        messages.append(contentsOf: batch)
    }

    /// Puts messages back in front, in their order (events held while their partition
    /// was paused, or given back by a reader).
    mutating func prepend(_ earlier: [RDKafkaMessage]) {
        messages.insert(contentsOf: earlier, at: 0)
    }

    /// Removes and returns the oldest message; the caller now owns it.
    mutating func popFirst() -> RDKafkaMessage? {
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
    mutating func removeAll() -> [RDKafkaMessage] {
        defer { messages.removeAll() }
        return Array(messages)
    }

    mutating func destroyAll() {
        for message in messages { message.destroy() }
        messages.removeAll()
    }
}

/// The offset of the last message of each partition among `messages` (in order).
private func lastOffsets(of messages: [RDKafkaMessage]) -> [(TopicPartition, Int64)] {
    struct Partition: Hashable {
        let topic: UnsafeMutableRawPointer?
        let partition: Int32
    }
    if messages.count == 1 {
        return [(TopicPartition(topic: messages[0].topic, partition: messages[0].partition), messages[0].offset)]
    }
    var seen = Set<Partition>()
    var result: [(TopicPartition, Int64)] = []
    for message in messages.reversed() {
        let pointee = message.pointer.pointee
        if seen.insert(Partition(topic: UnsafeMutableRawPointer(pointee.rkt), partition: pointee.partition)).inserted {
            result.append((TopicPartition(topic: message.topic, partition: message.partition), message.offset))
        }
    }
    return result
}

/// Stores next-offsets for the next commit; the caller keeps the handle alive. Partitions no
/// longer assigned are skipped by librdkafka.
private func storeOffsets(_ handle: OpaquePointer, _ entries: [(TopicPartition, Int64)]) {
    guard !entries.isEmpty else { return }
    _ = withPartitionList(entries) { rd_kafka_offsets_store(handle, $0) }
}

/// Offsets as librdkafka's `rd_kafka_topic_partition_list_t`, built and destroyed in this file.
private func withPartitionList<T>(
    _ entries: [(TopicPartition, Int64)], _ body: (UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) throws -> T
) rethrows -> T {
    let list = rd_kafka_topic_partition_list_new(Int32(clamping: max(1, entries.count)))!
    defer { rd_kafka_topic_partition_list_destroy(list) }
    for (partition, offset) in entries {
        rd_kafka_topic_partition_list_add(list, partition.topic, partition.partition).pointee.offset = offset
    }
    return try body(list)
}

private func entries(of list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) -> [(TopicPartition, Int64, rd_kafka_resp_err_t)] {
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

private func context(of handle: OpaquePointer?) -> RDKafkaCallbackContext? {
    guard let handle, let opaque = rd_kafka_opaque(handle) else { return nil }
    return Unmanaged<RDKafkaCallbackContext>.fromOpaque(opaque).takeUnretainedValue()
}

private let rebalanceCallback:
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

private let logCallback: @convention(c) (OpaquePointer?, Int32, UnsafePointer<CChar>?, UnsafePointer<CChar>?) -> Void = {
    handle, level, facility, message in
    guard let context = context(of: handle), let message else { return }
    RDKafkaConfig.forwardLog(context.logger, level: level, facility: facility, message: message)
}

private let errorCallback: @convention(c) (OpaquePointer?, Int32, UnsafePointer<CChar>?, UnsafeMutableRawPointer?) -> Void = {
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

private let offsetCommitCallback:
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

private let statisticsCallback: @convention(c) (OpaquePointer?, UnsafeMutablePointer<CChar>?, Int, UnsafeMutableRawPointer?) -> Int32 = {
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

// MARK: - The client

/// Owns one librdkafka consumer handle.
///
/// `@unchecked Sendable`: `handle` and `queue` are written once in `init` and destroyed once
/// in `closeAndDestroyNow()`. Every use of them goes through `using(_:_:)`, which refuses
/// once the destruction has begun, and the destruction waits for the uses in flight; the
/// blocking requests run on `operationsQueue`, as the destruction does, so none can start
/// on a destroyed handle. librdkafka's functions used here are thread-safe.
final class RDKafkaConsumerClient: @unchecked Sendable {
    private let handle: OpaquePointer
    private let queue: OpaquePointer
    let context: RDKafkaCallbackContext
    private let retainedContext: Unmanaged<RDKafkaCallbackContext>
    private let pollQueue = DispatchQueue(label: "workflow-events.consumer.poll")
    private let operationsQueue = DispatchQueue(label: "workflow-events.consumer.operations")

    /// Whether the consumer is closing (no fetch starts any more: librdkafka's close serves
    /// the consumer queue itself, and hangs when a fetch takes from it meanwhile) or being
    /// destroyed (nothing starts any more), and how many calls use the handle now.
    private struct Uses {
        var closing = false
        var destroying = false
        var active = 0
    }
    private let uses = Mutex(Uses())
    /// Signalled by the last use to end once the destruction has begun.
    private let lastUseEnded = DispatchSemaphore(value: 0)

    /// Wakes librdkafka's fetcher when its queue has run low (nil when librdkafka does it).
    private let fetcherWakeUp: FetcherWakeUp?
    private let wakeUpQueue = DispatchQueue(label: "workflow-events.consumer.fetcher-wake-up")
    /// Runs the commits of the application's rebalance handlers.
    private let handlerQueue = DispatchQueue(label: "workflow-events.consumer.rebalance-handlers")

    init(properties: [(String, String)], logger: Logger, metrics: ConsumerMetrics, listeners: RebalanceListeners) throws {
        fetcherWakeUp = FetcherWakeUp(properties: properties, librdkafkaVersion: librdkafkaVersionNumber)
        let context = RDKafkaCallbackContext(logger: logger, metrics: metrics, listeners: listeners)
        let retained = Unmanaged.passRetained(context)
        do {
            handle = try RDKafkaConfig.withConfiguration(properties) { conf in
                rd_kafka_conf_set_opaque(conf, retained.toOpaque())
                rd_kafka_conf_set_rebalance_cb(conf, rebalanceCallback)
                rd_kafka_conf_set_log_cb(conf, logCallback)
                rd_kafka_conf_set_error_cb(conf, errorCallback)
                rd_kafka_conf_set_offset_commit_cb(conf, offsetCommitCallback)
                rd_kafka_conf_set_stats_cb(conf, statisticsCallback)
                var errorText = [CChar](repeating: 0, count: 512)
                guard let handle = rd_kafka_new(RD_KAFKA_CONSUMER, conf, &errorText, errorText.count) else {
                    throw WorkflowEventsError(
                        .invalidConfiguration, "librdkafka could not create a consumer: \(RDKafkaConfig.cText(errorText))")
                }
                return (handle, true)
            }
        } catch {
            retained.release()
            throw error
        }
        rd_kafka_poll_set_consumer(handle)
        queue = rd_kafka_queue_get_consumer(handle)
        self.context = context
        self.retainedContext = retained
    }

    // MARK: Using the handle

    private func enter(fetching: Bool = false) -> Bool {
        uses.withLock { uses in
            guard !uses.destroying, !(fetching && uses.closing) else { return false }
            uses.active += 1
            return true
        }
    }

    private func leave() {
        let last = uses.withLock { uses in
            uses.active -= 1
            return uses.destroying && uses.active == 0
        }
        if last { lastUseEnded.signal() }
    }

    /// Runs `body` with the handle alive; throws `clientClosed` once it is being destroyed.
    private func using<T>(_ operation: String, _ body: () throws -> T) throws -> T {
        guard enter() else {
            throw WorkflowEventsError(.clientClosed, "cannot \(operation): the consumer is closed; create a new one")
        }
        defer { leave() }
        return try body()
    }

    /// Runs `body` with the handle alive, or returns `fallback` once it is being destroyed
    /// (or, when `fetching`, closing).
    private func usingIfOpen<T>(_ fallback: T, fetching: Bool = false, _ body: () -> T) -> T {
        guard enter(fetching: fetching) else { return fallback }
        defer { leave() }
        return body()
    }

    /// Runs a request that may block on `dispatchQueue`, never on Swift's cooperative pool.
    private func request<T: Sendable>(
        on dispatchQueue: DispatchQueue, _ operation: String, _ body: @escaping @Sendable () throws -> T
    ) async throws -> T {
        let result: Result<T, any Error> = await withCheckedContinuation { continuation in
            dispatchQueue.async { [self] in
                continuation.resume(returning: Result { try using(operation, body) })
            }
        }
        return try result.get()
    }

    // MARK: Fetching

    /// Takes up to `maximum` messages that are already waiting, without waiting for more. On
    /// the poll queue, as every consume call: librdkafka runs the rebalance callback inside
    /// it, and that callback waits for the application's rebalance handlers.
    func fetchAvailable(maximum: Int) async -> [RDKafkaMessage] {
        await withCheckedContinuation { continuation in
            pollQueue.async { [self] in
                continuation.resume(
                    returning: usingIfOpen([], fetching: true) {
                        let batch = consumeWaiting(maximum: maximum)
                        keepFetcherBusy(after: batch)
                        return batch
                    })
            }
        }
    }

    /// Waits up to `timeout` on the poll queue for a message, then takes the others already
    /// waiting, up to `maximum` in all. `wakeUp()` ends the wait early.
    ///
    /// (librdkafka's batch call would wait for the whole batch or the timeout, holding back
    /// the first message of a quiet topic for up to the timeout.)
    func fetch(timeout: Duration, maximum: Int, decode: Bool = false) async -> [RDKafkaMessage] {
        let milliseconds = timeout.milliseconds
        return await withCheckedContinuation { continuation in
            pollQueue.async { [self] in
                var batch: [RDKafkaMessage] = usingIfOpen([], fetching: true) {
                    guard let first = rd_kafka_consume_queue(queue, milliseconds) else { return [] }
                    var result = [RDKafkaMessage(pointer: first)]
                    if maximum > 1 { result += consumeWaiting(maximum: maximum - 1) }
                    keepFetcherBusy(after: result)
                    return result
                }
                if decode { Self.decodeValues(&batch) }
                continuation.resume(returning: batch)
            }
        }
    }

    /// Validates the values of `batch` (on the poll queue, beside the reader's work).
    private static func decodeValues(_ batch: inout [RDKafkaMessage]) {
        for index in batch.indices where !batch[index].isError && !batch[index].isTombstone {
            batch[index].decoded = batch[index].withValue { bytes in
                Result { () throws(WorkflowEventValidationError) in try WorkflowEvent.decode(bytes) }
            }
        }
    }

    /// Takes up to `maximum` messages that are already waiting, on the poll queue, and
    /// validates their values there when `decode` is set: the reader meanwhile works on
    /// the batch before (so two cores share the work).
    func fetchAhead(maximum: Int, decode: Bool) async -> [RDKafkaMessage] {
        await withCheckedContinuation { continuation in
            pollQueue.async { [self] in
                var batch: [RDKafkaMessage] = usingIfOpen([], fetching: true) {
                    let taken = consumeWaiting(maximum: maximum)
                    keepFetcherBusy(after: taken)
                    return taken
                }
                if decode { Self.decodeValues(&batch) }
                continuation.resume(returning: batch)
            }
        }
    }

    /// Takes up to `maximum` messages that are already waiting.
    ///
    /// librdkafka before 2.1 moves a partition's position past each message its batch call
    /// takes, then purges from that call's batch the messages of a partition whose version
    /// changed meanwhile (a pause, resume, seek or assignment change, librdkafka's own pause
    /// of the assignment at the start of a rebalance included), and resumes fetching from the
    /// moved position: those messages are never read (librdkafka pull request 4208; seen as
    /// a rolling group's commits passing events no member was given). There the messages are
    /// taken one call each: a message handed out is never purged, and one made outdated is
    /// dropped before it moves the position. The calls take the queue's lock per message as
    /// the batch call does.
    private func consumeWaiting(maximum: Int) -> [RDKafkaMessage] {
        guard Self.batchCallPurgesTakenMessages else { return consumeBatch(timeoutMilliseconds: 0, maximum: maximum) }
        var result: [RDKafkaMessage] = []
        result.reserveCapacity(min(maximum, 1024))
        while result.count < maximum, let message = rd_kafka_consume_queue(queue, 0) {
            result.append(RDKafkaMessage(pointer: message))
        }
        return result
    }

    /// Whether this librdkafka's batch call can lose messages taken in it (before 2.1).
    static let batchCallPurgesTakenMessages = librdkafkaVersionNumber < 0x0201_0000

    private func consumeBatch(timeoutMilliseconds: Int32, maximum: Int) -> [RDKafkaMessage] {
        let capacity = max(1, maximum)
        let array = UnsafeMutablePointer<UnsafeMutablePointer<rd_kafka_message_t>?>.allocate(capacity: capacity)
        defer { array.deallocate() }
        let count = rd_kafka_consume_batch_queue(queue, timeoutMilliseconds, array, capacity)
        guard count > 0 else { return [] }
        var result: [RDKafkaMessage] = []
        result.reserveCapacity(count)
        for index in 0..<count {
            if let message = array[index] { result.append(RDKafkaMessage(pointer: message)) }
        }
        return result
    }

    /// librdkafka before 2.1 stops fetching while its queue holds `queued.min.messages` or
    /// `queued.max.messages.kbytes`, and looks again only when its broker thread next wakes,
    /// up to a second later (librdkafka issue 2879; 2.1 added `fetch.queue.backoff.ms`). A
    /// reader slower than the fetcher would wait that second each time the queue runs dry.
    /// So when the queue has been near a limit and is now below half of it, the broker
    /// threads are woken with a request for the assigned partitions' latest offsets (whose
    /// answer is not used), one at a time, at most every 10 ms.
    private func keepFetcherBusy(after batch: [RDKafkaMessage]) {
        guard let fetcherWakeUp else { return }
        var bytes = 0
        for message in batch { bytes &+= message.valueLength }
        let length = Int(rd_kafka_queue_length(queue))
        guard fetcherWakeUp.shouldWake(queueLength: length, taken: batch.count, takenBytes: bytes) else { return }
        sendWakeUp(fetcherWakeUp)
    }

    /// Wakes the broker threads with a request whose answer is not used (see above).
    private func sendWakeUp(_ fetcherWakeUp: FetcherWakeUp) {
        let partitions = context.state.withLock { $0.assignment }
        guard !partitions.isEmpty else {
            fetcherWakeUp.finished()
            return
        }
        wakeUpQueue.async { [self] in
            defer { fetcherWakeUp.finished() }
            usingIfOpen(()) {
                withPartitionList(partitions.map { ($0, Int64(-1)) }) { list in
                    _ = rd_kafka_offsets_for_times(handle, list, 1000)
                }
            }
        }
    }

    /// How many times the fetcher was woken.
    var fetcherWakeUps: Int { fetcherWakeUp?.count ?? 0 }

    /// Ends a `fetch` that is waiting, from any thread.
    func wakeUp() {
        usingIfOpen(()) { rd_kafka_queue_yield(queue) }
    }

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
            // The application's pauses made before librdkafka knew these partitions.
            let userPaused = context.state.withLock { $0.userPaused }
            context.setPaused(true, partitions.map(\.0).filter { userPaused.contains($0) }, handle: handle)
        }
        context.state.withLock { state in
            state.assignment = Set(partitions.map(\.0))
            state.startOffsets = Dictionary(partitions, uniquingKeysWith: { _, last in last })
            state.generation += 1
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
        _ paused: Bool, _ partitions: [TopicPartition], decidedAt generation: Int? = nil, then done: (@Sendable () -> Void)? = nil
    ) {
        guard !partitions.isEmpty else {
            done?()
            return
        }
        wakeUp()
        pollQueue.async { [self] in
            defer { done?() }
            if paused, let generation, assignmentGeneration != generation {
                context.logger.debug(
                    "a pause decided before a rebalance was dropped",
                    metadata: ["kafka.partitions": "\(partitions.map(\.description).joined(separator: ","))"])
                return
            }
            let err = usingIfOpen(RD_KAFKA_RESP_ERR_NO_ERROR) { context.setPaused(paused, partitions, handle: handle) }
            // librdkafka 2.0.2 starts fetching a resumed partition only when its broker thread
            // next wakes, which can be a second later.
            if !paused, let fetcherWakeUp, fetcherWakeUp.shouldWakeAfterResume() { sendWakeUp(fetcherWakeUp) }
            if err != RD_KAFKA_RESP_ERR_NO_ERROR {
                context.logger.info(
                    "librdkafka refused to \(paused ? "pause" : "resume") partitions",
                    metadata: ["error": "\(KafkaError(err, operation: paused ? "pause" : "resume"))"])
            }
        }
    }

    /// Assignments so far: a rebalance changes it.
    var assignmentGeneration: Int { context.state.withLock { $0.generation } }

    /// The same, returning once librdkafka has it: for callers whose pace nothing else bounds.
    func setPausedAndWait(_ paused: Bool, _ partitions: [TopicPartition]) async {
        await withCheckedContinuation { continuation in
            setPaused(paused, partitions) { continuation.resume() }
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

    var assignment: Set<TopicPartition> { context.state.withLock { $0.assignment } }

    // MARK: Offsets

    /// Updates the offset tracker with `body`, then stores the offsets that moved, under the
    /// tracker's lock: the one way offsets are stored, so that they are stored in the order
    /// the tracker decided them.
    @discardableResult
    func trackOffsets<T>(_ body: (inout OffsetTracker) -> T) -> T {
        context.offsets.withLock { tracker in
            let result = body(&tracker)
            let entries = tracker.takeStores()
            if !entries.isEmpty { usingIfOpen(()) { storeOffsets(handle, entries) } }
            return result
        }
    }

    /// Updates the offset tracker without storing: the next `trackOffsets` stores what moved.
    /// For `process`, which notes each record taken and finished and stores once its loop
    /// has caught up.
    @discardableResult
    func recordOffsets<T>(_ body: (inout OffsetTracker) -> T) -> T {
        context.offsets.withLock { body(&$0) }
    }

    /// The records of `messages`, taken in order, are finished: the offset after the last
    /// one of each partition is stored.
    func finish(_ messages: [RDKafkaMessage]) {
        guard !messages.isEmpty else { return }
        let last = lastOffsets(of: messages)
        trackOffsets { tracker in
            for (partition, offset) in last { tracker.finish(through: offset, of: partition) }
        }
    }

    /// Commits the stored offsets, or the given ones, and waits for the broker's answer.
    /// `forRebalanceHandler`: on a queue of its own, since the operations queue may be
    /// running the close whose revocation waits for that handler.
    func commit(_ offsets: [(TopicPartition, Int64)]?, forRebalanceHandler: Bool = false) async throws {
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
            let error = KafkaError(err, operation: "commit before handing partitions over")
            context.metrics.commitFailures.increment()
            context.state.withLock { state in
                state.commitFailures += 1
                state.lastError = error.description
            }
            context.logger.info(
                "the commit before handing partitions over failed; their next owner may read some events again",
                metadata: ["error": "\(error)"])
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

    func takeErrorToThrow() -> KafkaError? {
        context.state.withLock { state in
            state.errorsToThrow.isEmpty ? nil : state.errorsToThrow.removeFirst()
        }
    }

    // MARK: Closing

    /// Leaves the group (committing stored offsets when auto-commit is on), then destroys
    /// the handle once every call using it has returned; later calls throw `clientClosed`.
    /// Every fetched message must have been destroyed first. Returns when done, or after
    /// `timeout` while the close goes on in the background (librdkafka's close cannot be
    /// interrupted).
    func closeAndDestroy(timeout: Duration) async {
        let resumed = Mutex(false)
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let resumeOnce: @Sendable () -> Void = {
                if resumed.withLock({ done in
                    defer { done = true }
                    return !done
                }) {
                    continuation.resume()
                }
            }
            operationsQueue.async { [self] in
                closeAndDestroyNow()
                resumeOnce()
            }
            DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(Int(timeout.milliseconds))) {
                resumeOnce()
            }
        }
    }

    /// The same, without waiting: for a consumer that was dropped without being closed.
    func closeAndDestroyInBackground() {
        operationsQueue.async { [self] in closeAndDestroyNow() }
    }

    /// Whether the consumer is closing or closed: no fetch starts any more.
    var isClosing: Bool { uses.withLock { $0.closing || $0.destroying } }

    private func closeAndDestroyNow() {
        guard enter() else { return }  // destroyed already
        // No fetch may take from the consumer queue while librdkafka's close serves it: new
        // ones return at once, and the one waiting is woken and ended.
        uses.withLock { $0.closing = true }
        rd_kafka_queue_yield(queue)
        pollQueue.sync {}
        // librdkafka's close serves the last rebalance (a commit before the hand-over
        // included) on this thread: the handle is still in use.
        let err = rd_kafka_consumer_close(handle)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR {
            context.logger.info("closing the consumer reported an error", metadata: ["error": "\(KafkaError(err, operation: "close"))"])
        }
        let othersInFlight = uses.withLock { uses in
            uses.destroying = true
            uses.active -= 1
            return uses.active > 0
        }
        // A fetch, a wake-up or a store still running: let it end first. A fetch ends within
        // its timeout (at most a second), sooner when woken.
        if othersInFlight {
            rd_kafka_queue_yield(queue)
            lastUseEnded.wait()
        }
        rd_kafka_queue_destroy(queue)
        rd_kafka_destroy(handle)
        retainedContext.release()
    }
}

/// The librdkafka this process runs with, as it names itself ("2.0.2").
let librdkafkaVersionText = String(cString: rd_kafka_version_str())
/// The same as a number, 0xMMmmrrxx.
let librdkafkaVersionNumber = Int(rd_kafka_version())

/// When to wake librdkafka's fetcher (see `RDKafkaConsumerClient.keepFetcherBusy`).
final class FetcherWakeUp: Sendable {
    private struct State {
        var nearLimitAt: UInt64 = 0
        var lastWakeUp: UInt64 = 0
        var inFlight = false
        var averageSize = 512.0
        var count = 0
    }

    private let messageLimit: Int
    private let byteLimit: Double
    private let state = Mutex(State())

    /// Nil when librdkafka (2.1 or later) backs off on a full queue by itself.
    init?(properties: [(String, String)], librdkafkaVersion: Int) {
        guard librdkafkaVersion < 0x0201_0000 else { return nil }  // 2.1 has fetch.queue.backoff.ms
        var settings: [String: String] = [:]
        for (key, value) in properties { settings[key] = value }
        messageLimit = settings["queued.min.messages"].flatMap { Int($0) } ?? 100_000
        byteLimit = Double(settings["queued.max.messages.kbytes"].flatMap { Int($0) } ?? 65_536) * 1024
    }

    /// Records what a fetch saw; true when the caller is to send a wake-up (and then call
    /// `finished()`).
    func shouldWake(queueLength: Int, taken: Int, takenBytes: Int) -> Bool {
        let now = DispatchTime.now().uptimeNanoseconds
        return state.withLock { state in
            if taken > 0 {
                // librdkafka counts some bytes of its own per message beside the value.
                state.averageSize = state.averageSize * 0.9 + (Double(takenBytes) / Double(taken) + 64) * 0.1
            }
            let estimatedBytes = Double(queueLength) * state.averageSize
            if queueLength * 2 >= messageLimit || estimatedBytes * 2 >= byteLimit {
                state.nearLimitAt = now
                return false
            }
            guard !state.inFlight, state.nearLimitAt != 0, now &- state.nearLimitAt < 2_000_000_000,
                now &- state.lastWakeUp >= 10_000_000
            else { return false }
            state.inFlight = true
            state.lastWakeUp = now
            state.count += 1
            return true
        }
    }

    /// True when no wake-up is in flight (one is then counted as sent).
    func shouldWakeAfterResume() -> Bool {
        state.withLock { state in
            guard !state.inFlight else { return false }
            state.inFlight = true
            state.lastWakeUp = DispatchTime.now().uptimeNanoseconds
            state.count += 1
            return true
        }
    }

    func finished() {
        state.withLock { $0.inFlight = false }
    }

    var count: Int { state.withLock { $0.count } }
}
