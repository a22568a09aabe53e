import Foundation
import InMemoryLogging
import Logging
import Synchronization
import Testing
import WorkflowEventsTesting

@testable import WorkflowEvents

/// An in-memory cluster with one topic of sample events, and a consumer of it.
struct Fixture: Sendable {
    let kafka = InMemoryKafka()
    let topic = "workflow-events"
    let group: String?
    let partitions: Int
    /// Where each event went.
    let placement: [UUID: (TopicPartition, Int64)]

    init(partitions: Int = 2, events: Int = 40, group: String? = "core-tests", byWorkflow: Bool = false) {
        self.group = group
        self.partitions = partitions
        kafka.createTopic(topic, partitions: partitions)
        placement = kafka.appendSampleEvents(count: events, to: topic, byWorkflow: byWorkflow)
    }

    func partition(_ number: Int32) -> TopicPartition { TopicPartition(topic: topic, partition: number) }

    var allPartitions: [TopicPartition] { (0..<Int32(partitions)).map(partition) }

    func configuration(
        autoCommit: Bool = true, retryPolicy: WorkflowEventConsumer.RetryPolicy = .none, consumerTimeout: Duration = .milliseconds(200)
    ) -> WorkflowEventConsumer.Configuration {
        WorkflowEventConsumer.Configuration(
            bootstrapServers: "in-memory:9092", groupID: group, enableAutoCommit: autoCommit, consumerTimeout: consumerTimeout,
            fetchBatchSize: 16, retryPolicy: retryPolicy, statisticsInterval: nil)
    }

    func consumer(
        autoCommit: Bool = true, retryPolicy: WorkflowEventConsumer.RetryPolicy = .none,
        protocol rebalanceProtocol: InMemoryConsumerClient.RebalanceProtocol = .eager, clock: VirtualClock? = nil
    ) throws -> (WorkflowEventConsumer, InMemoryConsumerClient) {
        try kafka.makeConsumer(
            configuration(autoCommit: autoCommit, retryPolicy: retryPolicy), protocol: rebalanceProtocol, clock: clock)
    }

    var endOffsets: [TopicPartition: Int64] {
        Dictionary(uniqueKeysWithValues: allPartitions.map { ($0, kafka.endOffset(of: $0)) })
    }

    var committed: [TopicPartition: Int64] { kafka.committed(group: group ?? "") }

    /// Every message handed out was destroyed exactly once.
    func expectNoMessageLeaked(sourceLocation: SourceLocation = #_sourceLocation) {
        let wrong = kafka.messagesNotDestroyedOnce
        #expect(wrong.isEmpty, "messages not destroyed exactly once: \(wrong.prefix(10))", sourceLocation: sourceLocation)
    }
}

/// Offsets per partition, in delivery order.
func offsetsByPartition(_ messages: [WorkflowEventMessage]) -> [Int32: [Int64]] {
    Dictionary(grouping: messages, by: \.partition).mapValues { $0.map(\.offset) }
}

/// A value shared by tasks, behind a lock.
final class Shared<Value: Sendable>: Sendable {
    private let value: Mutex<Value>

    init(_ value: Value) { self.value = Mutex(value) }

    func withLock<T: Sendable>(_ body: (inout Value) -> T) -> T { value.withLock { body(&$0) } }
}

/// Suspends until the calling task is cancelled, then throws `CancellationError`: a handler
/// or loop body that only its task's cancellation ends.
func untilCancelled() async throws {
    let (stream, continuation) = AsyncStream<Void>.makeStream()
    await withTaskCancellationHandler {
        for await _ in stream {}
    } onCancel: {
        continuation.finish()
    }
    throw CancellationError()
}

/// A logger whose entries the test can read.
func recordingLogger() -> (Logger, InMemoryLogHandler) {
    var handler = InMemoryLogHandler()
    handler.logLevel = .debug
    return (Logger(label: "in-memory", factory: { _ in handler }), handler)
}
