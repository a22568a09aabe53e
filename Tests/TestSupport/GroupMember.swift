public import Logging
import Synchronization
public import WorkflowEvents

/// A member that joins a group whose other member already reads: it reads `topic` with a
/// stream and notes the offsets it sees per partition.
public final class JoiningMember: Sendable {
    public let consumer: WorkflowEventConsumer
    private let task: Task<Void, any Error>
    private let seen: OffsetLog

    /// Starts the member and returns once it owns partitions and has read from each of them.
    public init(
        _ configuration: WorkflowEventConsumer.Configuration, topic: String,
        logger: Logger = Logger(label: "workflow-events.consumer")
    ) async throws {
        let consumer = try WorkflowEventConsumer(configuration: configuration, logger: logger)
        let seen = OffsetLog()
        self.consumer = consumer
        self.seen = seen
        self.task = Task {
            for try await message in consumer.messages(topics: [topic]) { seen.append(message) }
        }
        let describe: () async -> String = {
            let health = await consumer.health
            let statistics = await consumer.statistics
            let read = seen.offsets.map { "\($0.key): \($0.value.count) from \($0.value.first ?? -1)" }.sorted()
            return
                "owns [\(health.assignedPartitions.sorted().map(\.description).joined(separator: ", "))], read [\(read.joined(separator: "; "))], rebalances \(statistics.rebalances), group member \(health.isGroupMember), last error \(health.lastError ?? "none"), brokers unreachable for \(health.brokersUnreachableFor.map { "\($0)" } ?? "no time")"
        }
        try await waitUntil("the joining member owns partitions and read from them", timeout: .seconds(30), saw: describe) {
            let owned = await consumer.assignment
            let offsets = seen.offsets
            return !owned.isEmpty && owned.allSatisfy { offsets[$0]?.isEmpty == false }
        }
    }

    /// The first offset read from each partition.
    public var firstOffsets: [TopicPartition: Int64] { seen.offsets.compactMapValues(\.first) }

    /// Cancels the reading (which closes the consumer) and waits for it to end.
    public func stop() async {
        task.cancel()
        _ = await task.result
    }
}

/// The offsets read, per partition, in order; written from any task.
public final class OffsetLog: Sendable {
    private let state = Mutex<[TopicPartition: [Int64]]>([:])

    public init() {}

    public func append(_ message: WorkflowEventMessage) {
        state.withLock { $0[message.topicPartition, default: []].append(message.offset) }
    }

    public var offsets: [TopicPartition: [Int64]] { state.withLock { $0 } }
}
