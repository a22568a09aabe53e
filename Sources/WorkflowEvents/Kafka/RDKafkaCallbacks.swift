internal import CRDKafka
import Dispatch
import Foundation
import Logging
import Metrics
import Synchronization

// librdkafka's callbacks (rebalance, log, error, commit, statistics), which report to the
// consumer (`ClientEvents`), and the operations a rebalance asks of librdkafka.

// MARK: - Callbacks

func events(of handle: OpaquePointer?) -> (any ClientEvents)? {
    guard let handle, let opaque = rd_kafka_opaque(handle) else { return nil }
    return events(at: opaque)
}

func events(at opaque: UnsafeMutableRawPointer) -> any ClientEvents {
    Unmanaged<ClientEventsBox>.fromOpaque(opaque).takeUnretainedValue().events
}

/// What a rebalance asks of librdkafka, on the thread running its rebalance callback.
struct RDKafkaHandleOperations: RebalanceOperations {
    let handle: OpaquePointer

    func assign(_ partitions: [TopicPartition], startOffsets: [TopicPartition: Int64], incremental: Bool) -> KafkaError? {
        withPartitionList(partitions.map { ($0, startOffsets[$0] ?? RDKafkaOffset.invalid) }) { list in
            if incremental {
                return rd_kafka_incremental_assign(handle, list).map { KafkaError(consuming: $0, operation: "incremental assign") }
            }
            let err = rd_kafka_assign(handle, list)
            return err == RD_KAFKA_RESP_ERR_NO_ERROR ? nil : KafkaError(err, operation: "assign")
        }
    }

    func unassign(_ partitions: [TopicPartition], incremental: Bool) -> KafkaError? {
        guard incremental else {
            let err = rd_kafka_assign(handle, nil)
            return err == RD_KAFKA_RESP_ERR_NO_ERROR ? nil : KafkaError(err, operation: "unassign")
        }
        return withPartitionList(partitions.map { ($0, RDKafkaOffset.invalid) }) { list in
            rd_kafka_incremental_unassign(handle, list).map { KafkaError(consuming: $0, operation: "incremental unassign") }
        }
    }

    func pause(_ paused: Bool, _ partitions: [TopicPartition]) -> (paused: [TopicPartition], error: KafkaError?) {
        withPartitionList(partitions.map { ($0, RDKafkaOffset.invalid) }) { list in
            guard paused else {
                let err = rd_kafka_resume_partitions(handle, list)
                return ([], err == RD_KAFKA_RESP_ERR_NO_ERROR ? nil : KafkaError(err, operation: "resume"))
            }
            let err = rd_kafka_pause_partitions(handle, list)
            // librdkafka skips partitions it does not know, and says so only per element.
            let held = entries(of: list).filter { $0.2 == RD_KAFKA_RESP_ERR_NO_ERROR }.map(\.0)
            return (held, err == RD_KAFKA_RESP_ERR_NO_ERROR ? nil : KafkaError(err, operation: "pause"))
        }
    }

    func store(_ entries: [(TopicPartition, Int64)]) {
        storeOffsets(handle, entries)
    }

    func discardStoredOffsets(_ partitions: [TopicPartition]) {
        // A logical offset is stored whether or not the partition is assigned.
        storeOffsets(handle, partitions.map { ($0, RDKafkaOffset.invalid) })
    }
}

/// Records what librdkafka asks and hands it to the consumer, which runs the rebalance (the
/// same code the in-memory client drives).
let rebalanceCallback:
    @convention(c) (
        OpaquePointer?, rd_kafka_resp_err_t, UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?, UnsafeMutableRawPointer?
    ) -> Void = { handle, err, partitions, opaque in
        guard let handle, let partitions, let opaque else { return }
        let context = events(at: opaque)
        // NULL before the group has chosen a protocol (a consumer closed before it joined, or one
        // with a hand-made assignment): eager, as rd_kafka_assign expects then.
        let protocolName: UnsafePointer<CChar>? = rd_kafka_rebalance_protocol(handle)
        let cooperative = protocolName.map { String(cString: $0) } == "COOPERATIVE"
        let changed = entries(of: partitions).map(\.0)
        let operations = RDKafkaHandleOperations(handle: handle)
        switch err {
        case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
            context.partitionsAssigned(changed, cooperative: cooperative, with: operations)
        case RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS:
            let lost = rd_kafka_assignment_lost(handle) != 0
            context.partitionsRevoked(changed, lost: lost, cooperative: cooperative, with: operations)
        default:
            context.rebalanceFailed(KafkaError(err, operation: "rebalance"), with: operations)
        }
    }

let logCallback: @convention(c) (OpaquePointer?, Int32, UnsafePointer<CChar>?, UnsafePointer<CChar>?) -> Void = {
    handle, level, facility, message in
    guard let context = events(of: handle), let message else { return }
    RDKafkaConfig.forwardLog(context.logger, level: level, facility: facility, message: message)
}

let errorCallback: @convention(c) (OpaquePointer?, Int32, UnsafePointer<CChar>?, UnsafeMutableRawPointer?) -> Void = {
    handle, code, reason, opaque in
    guard let handle, let opaque else { return }
    let err = rd_kafka_resp_err_t(rawValue: code)
    var error: KafkaError
    if err == RD_KAFKA_RESP_ERR__FATAL {
        var text = [CChar](repeating: 0, count: 512)
        let underlying = rd_kafka_fatal_error(handle, &text, text.count)
        error = KafkaError(underlying, operation: "consume", message: RDKafkaConfig.cText(text), isFatal: true)
    } else {
        error = KafkaError(err, operation: "consume", message: reason.map { String(cString: $0) })
    }
    events(at: opaque).errorReported(error, allBrokersDown: err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
}

let offsetCommitCallback:
    @convention(c) (
        OpaquePointer?, rd_kafka_resp_err_t, UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?, UnsafeMutableRawPointer?
    ) -> Void = { _, err, list, opaque in
        guard let opaque, err != RD_KAFKA_RESP_ERR__NO_OFFSET else { return }
        let error = err == RD_KAFKA_RESP_ERR_NO_ERROR ? nil : KafkaError(err, operation: "commit")
        var taken: [(TopicPartition, Int64)] = []
        if let list {
            for (partition, offset, partitionError) in entries(of: list) where partitionError == RD_KAFKA_RESP_ERR_NO_ERROR && offset >= 0 {
                taken.append((partition, offset))
            }
        }
        events(at: opaque).commitAnswered(error, offsets: taken, handingOver: false)
    }

let statisticsCallback: @convention(c) (OpaquePointer?, UnsafeMutablePointer<CChar>?, Int, UnsafeMutableRawPointer?) -> Int32 = {
    _, json, length, opaque in
    guard let json, let opaque else { return 0 }
    guard let report = StatisticsReport(json: UnsafeRawBufferPointer(start: json, count: length)) else { return 0 }
    events(at: opaque).statisticsReported(report)
    return 0  // librdkafka frees the JSON
}
