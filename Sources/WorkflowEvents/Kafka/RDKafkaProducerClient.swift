internal import CRDKafka
import Dispatch
import Logging
import Synchronization

// Everything the producer does with librdkafka, and the only file that sees its producer
// pointer. Delivery reports are served by a poll loop on a private dispatch queue (a thread
// of its own, off the cooperative pool) and resume the task that awaits each message.

/// Where a message was written.
public struct DeliveryReport: Sendable, Hashable, CustomStringConvertible {
    /// The topic the message was written to.
    public var topic: String
    /// The partition it was written to.
    public var partition: Int32
    /// Its offset in that partition.
    public var offset: Int64

    /// Creates a report, for tests.
    public init(topic: String, partition: Int32, offset: Int64) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
    }

    /// `topic[partition]@offset`.
    public var description: String { "\(topic)[\(partition)]@\(offset)" }
}

/// Delivery results by message id, shared with librdkafka's delivery callback.
final class RDKafkaDeliveries: Sendable {
    enum Slot {
        case waiting(CheckedContinuation<DeliveryReport, any Error>?)
        case done(Result<DeliveryReport, KafkaError>)
    }

    let logger: Logger
    let slots = Mutex<[UInt: Slot]>([:])
    private let nextID = Atomic<UInt>(0)

    init(logger: Logger) { self.logger = logger }

    func register() -> UInt {
        let id = nextID.add(1, ordering: .relaxed).newValue
        slots.withLock { $0[id] = .waiting(nil) }
        return id
    }

    /// Deliveries registered and not yet awaited to their end.
    var pendingCount: Int { slots.withLock { $0.count } }

    func forget(_ id: UInt) {
        slots.withLock { _ = $0.removeValue(forKey: id) }
    }

    func complete(_ id: UInt, _ result: Result<DeliveryReport, KafkaError>) {
        let waiter: CheckedContinuation<DeliveryReport, any Error>? = slots.withLock { slots in
            guard case .waiting(let continuation)? = slots[id] else { return nil }
            if let continuation {
                slots[id] = nil
                return continuation
            }
            slots[id] = .done(result)
            return nil
        }
        waiter?.resume(with: result.mapError { $0 as any Error })
    }

    func wait(for id: UInt) async throws -> DeliveryReport {
        try await withCheckedThrowingContinuation { continuation in
            let ready: Result<DeliveryReport, KafkaError>? = slots.withLock { slots in
                switch slots[id] {
                case .done(let result)?:
                    slots[id] = nil
                    return result
                case .waiting?:
                    slots[id] = .waiting(continuation)
                    return nil
                case nil:
                    return .failure(KafkaError(code: .state, message: "no message with this id is pending", operation: "await delivery"))
                }
            }
            if let ready { continuation.resume(with: ready.mapError { $0 as any Error }) }
        }
    }

    /// Fails every delivery still pending (when the producer is destroyed).
    func failAll(_ error: KafkaError) {
        let pending = slots.withLock { slots in
            let all = slots
            slots = [:]
            return all
        }
        for (_, slot) in pending {
            if case .waiting(let continuation?) = slot { continuation.resume(throwing: error) }
        }
    }
}

private let deliveryCallback:
    @convention(c) (
        OpaquePointer?, UnsafePointer<rd_kafka_message_t>?, UnsafeMutableRawPointer?
    ) -> Void = { _, message, opaque in
        guard let message, let opaque else { return }
        let deliveries = Unmanaged<RDKafkaDeliveries>.fromOpaque(opaque).takeUnretainedValue()
        let id = UInt(bitPattern: message.pointee._private)
        let topic = message.pointee.rkt.map { String(cString: rd_kafka_topic_name($0)) } ?? ""
        let err = message.pointee.err
        if err == RD_KAFKA_RESP_ERR_NO_ERROR {
            deliveries.complete(
                id, .success(DeliveryReport(topic: topic, partition: message.pointee.partition, offset: message.pointee.offset)))
        } else {
            deliveries.complete(id, .failure(KafkaError(err, operation: "deliver a message to '\(topic)'")))
        }
    }

private let producerLogCallback: @convention(c) (OpaquePointer?, Int32, UnsafePointer<CChar>?, UnsafePointer<CChar>?) -> Void = {
    handle, level, facility, message in
    guard let handle, let opaque = rd_kafka_opaque(handle), let message else { return }
    let deliveries = Unmanaged<RDKafkaDeliveries>.fromOpaque(opaque).takeUnretainedValue()
    RDKafkaConfig.forwardLog(deliveries.logger, level: level, facility: facility, message: message)
}

/// Owns one librdkafka producer handle.
///
/// `@unchecked Sendable`: the handle is written once in `init` and destroyed once in
/// `closeAndDestroy`, which the owning actor calls last; librdkafka's producer calls are
/// thread-safe.
final class RDKafkaProducerClient: @unchecked Sendable {
    private let handle: OpaquePointer
    let deliveries: RDKafkaDeliveries
    private let retainedDeliveries: Unmanaged<RDKafkaDeliveries>
    private let pollQueue = DispatchQueue(label: "workflow-events.producer.poll")
    private let operationsQueue = DispatchQueue(label: "workflow-events.producer.operations")
    private let stopPolling = Atomic<Bool>(false)
    private let pollLoopEnded = DispatchSemaphore(value: 0)

    init(properties: [(String, String)], logger: Logger) throws {
        let deliveries = RDKafkaDeliveries(logger: logger)
        let retained = Unmanaged.passRetained(deliveries)
        do {
            handle = try RDKafkaConfig.withConfiguration(properties) { conf in
                rd_kafka_conf_set_opaque(conf, retained.toOpaque())
                rd_kafka_conf_set_dr_msg_cb(conf, deliveryCallback)
                rd_kafka_conf_set_log_cb(conf, producerLogCallback)
                var errorText = [CChar](repeating: 0, count: 512)
                guard let handle = rd_kafka_new(RD_KAFKA_PRODUCER, conf, &errorText, errorText.count) else {
                    throw WorkflowEventsError(
                        .invalidConfiguration, "librdkafka could not create a producer: \(RDKafkaConfig.cText(errorText))")
                }
                return (handle, true)
            }
        } catch {
            retained.release()
            throw error
        }
        self.deliveries = deliveries
        self.retainedDeliveries = retained
        pollQueue.async { [self] in
            while !stopPolling.load(ordering: .acquiring) {
                rd_kafka_poll(handle, 50)
            }
            pollLoopEnded.signal()
        }
    }

    private func onQueue<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            operationsQueue.async { continuation.resume(returning: body()) }
        }
    }

    /// Hands one message to librdkafka without blocking; returns the id to await, or
    /// `queueFull` when librdkafka's queue has no room right now.
    func enqueue(
        topic: String, partition: Int32?, key: [UInt8]?, value: [UInt8]?, headers: [KafkaHeader]
    ) throws(KafkaError) -> UInt {
        let id = deliveries.register()
        var cHeaders: OpaquePointer?
        if !headers.isEmpty {
            cHeaders = rd_kafka_headers_new(headers.count)
            for header in headers {
                if let value = header.value {
                    _ = value.withUnsafeBytes { rd_kafka_header_add(cHeaders, header.name, -1, $0.baseAddress, $0.count) }
                } else {
                    _ = rd_kafka_header_add(cHeaders, header.name, -1, nil, 0)
                }
            }
        }
        let target = partition ?? Int32(RD_KAFKA_PARTITION_UA)
        let opaque = UnsafeMutableRawPointer(bitPattern: id)
        let err: rd_kafka_resp_err_t = withOptionalBytes(value) { valueBytes in
            withOptionalBytes(key) { keyBytes in
                swe_produce(
                    handle, topic, target,
                    valueBytes?.baseAddress, valueBytes?.count ?? 0,
                    keyBytes?.baseAddress, keyBytes?.count ?? 0,
                    cHeaders, opaque)
            }
        }
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else {
            if let cHeaders { rd_kafka_headers_destroy(cHeaders) }
            deliveries.forget(id)
            throw KafkaError(err, operation: "produce to '\(topic)'")
        }
        return id
    }

    func flush(timeout: Duration) async throws {
        let milliseconds = timeout.milliseconds
        let err: rd_kafka_resp_err_t = await onQueue { [self] in rd_kafka_flush(handle, milliseconds) }
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else {
            throw KafkaError(err, operation: "flush", message: "messages were still undelivered after \(timeout)")
        }
    }

    /// Waits up to `timeout` for outstanding messages, fails the rest, destroys the handle.
    func closeAndDestroy(timeout: Duration) async {
        await onQueue { [self] in closeAndDestroyNow(timeout: timeout) }
    }

    /// The same, without waiting: for a producer released without being closed.
    func closeAndDestroyInBackground(timeout: Duration) {
        operationsQueue.async { [self] in closeAndDestroyNow(timeout: timeout) }
    }

    private func closeAndDestroyNow(timeout: Duration) {
        if rd_kafka_flush(handle, timeout.milliseconds) != RD_KAFKA_RESP_ERR_NO_ERROR {
            rd_kafka_purge(handle, Int32(RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT))
            rd_kafka_poll(handle, 0)
        }
        stopPolling.store(true, ordering: .releasing)
        pollLoopEnded.wait()
        rd_kafka_destroy(handle)
        deliveries.failAll(KafkaError(code: .state, message: "the producer was closed before delivery", operation: "close"))
        retainedDeliveries.release()
    }
}

private func withOptionalBytes<T>(_ bytes: [UInt8]?, _ body: (UnsafeRawBufferPointer?) -> T) -> T {
    guard let bytes else { return body(nil) }
    if bytes.isEmpty {
        // An empty value is not a null one: it needs a non-null pointer.
        var zero: UInt8 = 0
        return withUnsafeBytes(of: &zero) { body(UnsafeRawBufferPointer(rebasing: $0[0..<0])) }
    }
    return bytes.withUnsafeBytes { body($0) }
}
