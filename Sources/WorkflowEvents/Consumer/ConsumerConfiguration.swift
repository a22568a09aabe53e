extension WorkflowEventConsumer {
    /// Where a consumer starts reading a partition that has no committed offset.
    public enum AutoOffsetReset: String, Sendable, Hashable {
        /// The oldest record still in the partition.
        case earliest
        /// Only records written after the consumer started.
        case latest
        /// No default: reading such a partition is an error.
        case none
    }

    /// The settings of a consumer, with the seed guide's defaults.
    public struct Configuration: Sendable {
        /// Comma-separated `host:port` list of brokers to bootstrap from.
        public var bootstrapServers: String
        /// The consumer group. Without one, `subscribe` reads every partition of its topics
        /// and offsets cannot be committed.
        public var groupID: String?
        /// Where to start a partition that has no committed offset (`auto.offset.reset`).
        public var autoOffsetReset: AutoOffsetReset
        /// Commit, every `autoCommitInterval`, the offsets of the events whose processing has
        /// finished (never of events only fetched). Also commits them on close.
        public var enableAutoCommit: Bool
        /// How long `consumeEvents` waits for a new event before it returns.
        public var consumerTimeout: Duration
        /// The most records one `poll` returns; nil means up to 500.
        public var maxPollRecords: Int?
        /// How often auto-commit commits the processed offsets (`auto.commit.interval.ms`).
        public var autoCommitInterval: Duration
        /// How long `subscribe` waits for a bootstrap server to answer before it throws.
        public var connectionTimeout: Duration
        /// How long `seek` and `position` wait for the group to assign a partition.
        public var assignmentTimeout: Duration
        /// How long `close` waits to commit and leave the group before it gives up.
        public var closeTimeout: Duration
        /// The most messages taken from librdkafka at once while streaming.
        public var fetchBatchSize: Int
        /// The client id the brokers see in their logs and quotas (`client.id`).
        public var clientID: String
        /// Any librdkafka property, applied last (e.g. `["session.timeout.ms": "6000"]`).
        /// `enable.auto.offset.store` is managed by the consumer and cannot be set here.
        public var properties: [String: String]

        /// Creates a configuration; every parameter has the seed guide's default.
        public init(
            bootstrapServers: String = "localhost:9092",
            groupID: String? = nil,
            autoOffsetReset: AutoOffsetReset = .earliest,
            enableAutoCommit: Bool = true,
            consumerTimeout: Duration = .milliseconds(1000),
            maxPollRecords: Int? = nil,
            autoCommitInterval: Duration = .seconds(5),
            connectionTimeout: Duration = .seconds(10),
            assignmentTimeout: Duration = .seconds(30),
            closeTimeout: Duration = .seconds(10),
            fetchBatchSize: Int = 500,
            clientID: String = "swift-workflow-events",
            properties: [String: String] = [:]
        ) {
            self.bootstrapServers = bootstrapServers
            self.groupID = groupID
            self.autoOffsetReset = autoOffsetReset
            self.enableAutoCommit = enableAutoCommit
            self.consumerTimeout = consumerTimeout
            self.maxPollRecords = maxPollRecords
            self.autoCommitInterval = autoCommitInterval
            self.connectionTimeout = connectionTimeout
            self.assignmentTimeout = assignmentTimeout
            self.closeTimeout = closeTimeout
            self.fetchBatchSize = fetchBatchSize
            self.clientID = clientID
            self.properties = properties
        }

        /// The librdkafka properties this configuration stands for, in the order applied.
        func librdkafkaProperties() throws -> [(String, String)] {
            guard !bootstrapServers.isEmpty else {
                throw WorkflowEventsError(.invalidConfiguration, "bootstrapServers is empty: give at least one host:port")
            }
            if let groupID, groupID.isEmpty {
                throw WorkflowEventsError(.invalidConfiguration, "groupID is empty: use nil for no group, or a name")
            }
            if let maxPollRecords, maxPollRecords < 1 {
                throw WorkflowEventsError(.invalidConfiguration, "maxPollRecords is \(maxPollRecords): it must be at least 1")
            }
            if fetchBatchSize < 1 {
                throw WorkflowEventsError(.invalidConfiguration, "fetchBatchSize is \(fetchBatchSize): it must be at least 1")
            }
            if groupID == nil && autoOffsetReset == .none {
                throw WorkflowEventsError(
                    .invalidConfiguration,
                    "autoOffsetReset .none needs a groupID: without a group there is no committed offset to resume from")
            }
            if properties["enable.auto.offset.store"] != nil {
                throw WorkflowEventsError(
                    .invalidConfiguration,
                    "property 'enable.auto.offset.store' is managed by the consumer (offsets are stored after processing)")
            }
            var result: [(String, String)] = [
                ("bootstrap.servers", bootstrapServers),
                ("client.id", clientID),
                ("auto.offset.reset", autoOffsetReset == .none ? "error" : autoOffsetReset.rawValue),
                ("enable.auto.offset.store", "false"),
                ("enable.partition.eof", "false"),
            ]
            if let groupID {
                result.append(("group.id", groupID))
                result.append(("enable.auto.commit", enableAutoCommit ? "true" : "false"))
                result.append(("auto.commit.interval.ms", String(autoCommitInterval.milliseconds)))
            } else {
                // librdkafka routes fetched messages through a group's queue even when
                // partitions are assigned by hand: give it a private group that is never
                // joined and never committed to.
                result.append(("group.id", "swift-workflow-events.unjoined.\(UInt64.random(in: 0...UInt64.max))"))
                result.append(("enable.auto.commit", "false"))
            }
            for key in properties.keys.sorted() {
                result.append((key, properties[key]!))
            }
            return result
        }
    }
}
