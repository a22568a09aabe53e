public import Foundation
import Metrics
import Synchronization
import Tracing

// MARK: - Metrics

/// The consumer's swift-metrics instruments, each with a `group` dimension (`none` without
/// a group). The names are listed in the README's "Operating it".
final class ConsumerMetrics: Sendable {
    let events: Counter
    let invalidEvents: Counter
    let handlerFailures: Counter
    let deadLettered: Counter
    let commits: Counter
    let commitFailures: Counter
    let rebalances: Counter
    let handlerDuration: Metrics.Timer
    let totalLag: Gauge
    /// 1 while no broker answers, else 0.
    let brokersUnreachable: Gauge
    /// Times every broker became unreachable.
    let outages: Counter
    private let group: String
    private let partitionLag = Mutex<[TopicPartition: Gauge]>([:])

    init(group: String?) {
        let group = group ?? "none"
        let dimensions = [("group", group)]
        self.group = group
        events = Counter(label: "workflow_events_consumer_events_total", dimensions: dimensions)
        invalidEvents = Counter(label: "workflow_events_consumer_invalid_events_total", dimensions: dimensions)
        handlerFailures = Counter(label: "workflow_events_consumer_handler_failures_total", dimensions: dimensions)
        deadLettered = Counter(label: "workflow_events_consumer_dead_lettered_total", dimensions: dimensions)
        commits = Counter(label: "workflow_events_consumer_commits_total", dimensions: dimensions)
        commitFailures = Counter(label: "workflow_events_consumer_commit_failures_total", dimensions: dimensions)
        rebalances = Counter(label: "workflow_events_consumer_rebalances_total", dimensions: dimensions)
        handlerDuration = Metrics.Timer(label: "workflow_events_consumer_handler_duration", dimensions: dimensions)
        totalLag = Gauge(label: "workflow_events_consumer_lag_total", dimensions: dimensions)
        brokersUnreachable = Gauge(label: "workflow_events_consumer_brokers_unreachable", dimensions: dimensions)
        outages = Counter(label: "workflow_events_consumer_outages_total", dimensions: dimensions)
    }

    /// Sets the lag gauges from librdkafka's statistics.
    func recordLag(_ lag: [TopicPartition: Int64]) {
        partitionLag.withLock { gauges in
            for (partition, value) in lag {
                let gauge =
                    gauges[partition]
                    ?? Gauge(
                        label: "workflow_events_consumer_lag",
                        dimensions: [("group", group), ("topic", partition.topic), ("partition", String(partition.partition))])
                gauges[partition] = gauge
                gauge.record(value)
            }
        }
        totalLag.record(lag.values.reduce(0, +))
    }
}

extension Metrics.Timer {
    /// Records the time elapsed since `start`.
    func record(since start: ContinuousClock.Instant) {
        let (seconds, attoseconds) = (ContinuousClock.now - start).components
        recordNanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}

// MARK: - Rebalances and health

/// A change of the partitions assigned to a consumer.
public struct RebalanceEvent: Sendable, Hashable {
    /// What happened to the partitions.
    public enum Kind: String, Sendable, Hashable {
        /// The group gave these partitions to this consumer.
        case assigned
        /// The group is taking these partitions away; delivered before their offsets are
        /// committed and they are handed over.
        case revoked
        /// The partitions were lost (the member was expelled): their offsets cannot be
        /// committed any more, and another member may already own them.
        case lost
    }

    /// What happened.
    public var kind: Kind
    /// The partitions concerned (with cooperative-sticky assignment, only those that move).
    public var partitions: [TopicPartition]
    /// When librdkafka reported it.
    public var time: Date

    /// An event, for tests.
    public init(kind: Kind, partitions: [TopicPartition], time: Date = Date()) {
        self.kind = kind
        self.partitions = partitions
        self.time = time
    }
}

/// Listeners of a consumer's rebalance events.
final class RebalanceListeners: Sendable {
    private struct State {
        var continuations: [Int: AsyncStream<RebalanceEvent>.Continuation] = [:]
        var nextID = 0
        /// Set when the consumer closed: a stream made later finishes at once.
        var finished = false
    }

    private let state = Mutex(State())

    func makeStream() -> AsyncStream<RebalanceEvent> {
        let (stream, continuation) = AsyncStream.makeStream(of: RebalanceEvent.self)
        let id: Int? = state.withLock { state in
            guard !state.finished else { return nil }
            state.nextID += 1
            state.continuations[state.nextID] = continuation
            return state.nextID
        }
        guard let id else {
            continuation.finish()
            return stream
        }
        continuation.onTermination = { [weak self] _ in
            self?.state.withLock { _ = $0.continuations.removeValue(forKey: id) }
        }
        return stream
    }

    func yield(_ event: RebalanceEvent) {
        for continuation in state.withLock({ Array($0.continuations.values) }) { continuation.yield(event) }
    }

    func finishAll() {
        let all = state.withLock { state in
            state.finished = true
            defer { state.continuations = [:] }
            return Array(state.continuations.values)
        }
        for continuation in all { continuation.finish() }
    }
}

/// A cheap snapshot for a readiness probe.
public struct ConsumerHealth: Sendable, Hashable {
    /// The partitions this consumer reads now.
    public var assignedPartitions: Set<TopicPartition>
    /// When the last event was handed to the application.
    public var lastEventTime: Date?
    /// Records the consumer has still to read, per partition: from librdkafka's last
    /// statistics (every `statisticsInterval`), else, from the first fetch response after
    /// the assignment on, the partition's end less the next offset to deliver.
    public var lagByPartition: [TopicPartition: Int64]
    /// The last error librdkafka or a read reported, in one sentence.
    public var lastError: String?
    /// Whether the consumer is closed.
    public var isClosed: Bool
    /// Whether the group has given this member its assignment, possibly none (a standby
    /// when the group has more members than partitions). False without a group.
    public var isGroupMember: Bool = false
    /// How long no broker has answered, while none does (librdkafka reported every broker
    /// down, and none has connected since); nil while one answers.
    public var brokersUnreachableFor: Duration?

    /// The sum of `lagByPartition`; nil while it is empty.
    public var lag: Int64? { lagByPartition.isEmpty ? nil : lagByPartition.values.reduce(0, +) }

    /// Open, some broker answering, and assigned partitions or (with a group) a member of a
    /// stable group: a standby that owns no partition is ready to take some over.
    public var isReady: Bool {
        !isClosed && brokersUnreachableFor == nil && (!assignedPartitions.isEmpty || isGroupMember)
    }
}

// MARK: - Tracing

/// Reads trace context out of Kafka headers.
struct KafkaHeaderExtractor: Extractor {
    func extract(key: String, from carrier: [KafkaHeader]) -> String? { carrier.string(key) }
}

/// Writes trace context into Kafka headers.
struct KafkaHeaderInjector: Injector {
    func inject(_ value: String, forKey key: String, into carrier: inout [KafkaHeader]) {
        carrier.removeAll { $0.name == key }
        carrier.append(KafkaHeader(name: key, string: value))
    }
}

extension WorkflowEventMessage {
    /// Runs `body` in the consumer span that ``WorkflowEventConsumer/consumeEvents(topics:timeout:_:)``
    /// and `process` give each handler call: named after the event type, continuing the
    /// trace the message's headers carry, with OpenTelemetry's messaging attributes
    /// (`group` as `messaging.consumer.group.name`). For the body of a `for try await` loop
    /// over ``WorkflowEventConsumer/messages(topics:idleTimeout:)`` or
    /// ``WorkflowEventConsumer/batches(topics:maxCount:maxWait:idleTimeout:)``. Without a
    /// tracer bootstrapped it only runs `body`.
    nonisolated(nonsending) public func withConsumerSpan<T>(group: String? = nil, _ body: () async throws -> T) async throws -> T {
        try await WorkflowEventConsumer.withEventSpan(self, group: group, body)
    }
}

extension WorkflowEventConsumer {
    /// Whether a tracer is bootstrapped: spans are made for events only then.
    static var isTracing: Bool { !(InstrumentationSystem.tracer is NoOpTracer) }

    /// Runs `body` in a consumer span named after the event type, continuing the trace its
    /// headers carry (`traceparent` with W3C propagation), with OpenTelemetry's messaging
    /// attributes.
    ///
    /// `tracing` is whether a tracer is bootstrapped (``isTracing``), which loops ask once,
    /// not per event: the look-up takes a lock and a dynamic cast.
    nonisolated(nonsending) static func withEventSpan<T>(
        _ message: WorkflowEventMessage, group: String?, tracing: Bool = isTracing, _ body: () async throws -> T
    ) async throws -> T {
        // Without a tracer bootstrapped, a span would cost a task-local binding per event
        // for nothing.
        guard tracing else { return try await body() }
        var context = ServiceContext.topLevel
        InstrumentationSystem.instrument.extract(message.headers, into: &context, using: KafkaHeaderExtractor())
        return try await withSpan(message.event.eventType.rawValue, context: context, ofKind: .consumer) { span in
            span.attributes["messaging.system"] = "kafka"
            span.attributes["messaging.operation.type"] = "process"
            span.attributes["messaging.destination.name"] = message.topic
            span.attributes["messaging.destination.partition.id"] = String(message.partition)
            span.attributes["messaging.kafka.offset"] = Int(message.offset)
            span.attributes["messaging.message.id"] = message.event.eventID.uuidString.lowercased()
            if let key = message.key.flatMap({ String(validating: $0, as: UTF8.self) }) {
                span.attributes["messaging.kafka.message.key"] = key
            }
            if let group { span.attributes["messaging.consumer.group.name"] = group }
            return try await body()
        }
    }
}
