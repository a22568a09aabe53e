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
        /// The most messages taken from librdkafka at once while streaming. A stream holds
        /// at most two batches: the one it delivers from, and the next, taken and validated
        /// ahead on another thread.
        public var fetchBatchSize: Int
        /// The client id the brokers see in their logs and quotas (`client.id`).
        public var clientID: String
        /// Any librdkafka property, applied last (e.g. `["session.timeout.ms": "6000"]`):
        /// TLS and SASL settings go here too (`security.protocol`, `sasl.password`...), and
        /// the values of secret ones never appear in a description, log line or error.
        /// `enable.auto.offset.store` is managed by the consumer and cannot be set here.
        public var properties: [String: String]
        /// Where messages that are not valid events go, unchanged, with headers saying why,
        /// where from and when (see ``WorkflowEventConsumer/DeadLetterHeader``); also events
        /// whose `consumeEvents` handler still throws after ``retryPolicy``. A message's
        /// offset moves on only once the dead-letter topic has stored it. nil: such
        /// messages are logged, counted and skipped.
        public var deadLetterTopic: String?
        /// How often `consumeEvents` calls a throwing handler again before the event is
        /// dead-lettered (or, without a ``deadLetterTopic``, logged and skipped).
        public var retryPolicy: RetryPolicy
        /// How long an idle timeout (`consumeEvents`'s, a stream's `idleTimeout`) waits on, past
        /// its end, while this member is behind: its partitions hold events it has not read, or
        /// their end is not known (no broker has answered a fetch). Then the read throws a
        /// ``KafkaError`` saying how long nothing came and how far behind the member is.
        public var behindTimeout: Duration = .seconds(60)
        /// How long ``WorkflowEventConsumer/serve(topics:_:)`` and `WorkflowEventService` wait,
        /// at their start, for a bootstrap server to answer (a service may start before
        /// Kafka does); nil, the default, waits as long as it takes, logging a warning now and
        /// then. Past the limit they throw a ``KafkaError`` saying so.
        public var clusterWaitLimit: Duration?
        /// How often librdkafka reports statistics, from which the lag gauges and
        /// ``WorkflowEventConsumer/health`` are updated (`statistics.interval.ms`); nil: never.
        public var statisticsInterval: Duration?

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
            properties: [String: String] = [:],
            deadLetterTopic: String? = nil,
            retryPolicy: RetryPolicy = .none,
            statisticsInterval: Duration? = .seconds(5)
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
            self.deadLetterTopic = deadLetterTopic
            self.retryPolicy = retryPolicy
            self.statisticsInterval = statisticsInterval
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
            if let deadLetterTopic, deadLetterTopic.isEmpty {
                throw WorkflowEventsError(.invalidConfiguration, "deadLetterTopic is empty: use nil for none, or a topic name")
            }
            if let clusterWaitLimit, clusterWaitLimit < .zero {
                throw WorkflowEventsError(.invalidConfiguration, "clusterWaitLimit is \(clusterWaitLimit): it must not be negative")
            }
            if behindTimeout < .zero {
                throw WorkflowEventsError(.invalidConfiguration, "behindTimeout is \(behindTimeout): it must not be negative")
            }
            if retryPolicy.attempts < 1 {
                throw WorkflowEventsError(
                    .invalidConfiguration, "retryPolicy.attempts is \(retryPolicy.attempts): it must be at least 1 (1 means no retry)")
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
            if let statisticsInterval {
                result.append(("statistics.interval.ms", String(max(1, statisticsInterval.milliseconds))))
            }
            // librdkafka prefetches up to 64 MiB by default, which a reader slower than the
            // fetcher keeps full; 8 MiB (about 23,000 events of the contract's size) reads as
            // fast in the benchmark. `properties` may set it again.
            result.append(("queued.max.messages.kbytes", "8192"))
            // librdkafka doubles the wait before reconnecting to a broker after each failure up
            // to 10 s: after a few outages in a row a member came back 30 s after the cluster.
            // At most 1 s, it reads again within seconds. `properties` may set it again.
            result.append(("reconnect.backoff.max.ms", "1000"))
            for key in properties.keys.sorted() {
                result.append((key, properties[key]!))
            }
            return result
        }
    }
}

extension WorkflowEventConsumer {
    /// How a throwing handler is called again: up to `attempts` calls in all, waiting
    /// `initialBackoff`, then twice as long each time, at most `maximumBackoff`.
    public struct RetryPolicy: Sendable, Hashable {
        /// Calls in all, the first included; 1 means no retry.
        public var attempts: Int
        /// The wait before the second call.
        public var initialBackoff: Duration
        /// The longest wait between two calls.
        public var maximumBackoff: Duration

        /// A policy; `attempts` counts the first call.
        public init(attempts: Int, initialBackoff: Duration = .milliseconds(100), maximumBackoff: Duration = .seconds(10)) {
            self.attempts = attempts
            self.initialBackoff = initialBackoff
            self.maximumBackoff = maximumBackoff
        }

        /// One call, no retry.
        public static let none = RetryPolicy(attempts: 1)

        /// The wait after the `failures`-th failed call (1 for the first).
        public func backoff(afterFailure failures: Int) -> Duration {
            var wait = initialBackoff
            for _ in 1..<max(1, failures) {
                wait = wait * 2
                if wait >= maximumBackoff { return maximumBackoff }
            }
            return min(wait, maximumBackoff)
        }
    }
}

extension WorkflowEventConsumer.Configuration: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// Every setting, with the values of secret properties (passwords, keys, secrets)
    /// replaced by `[redacted]`.
    public var description: String {
        var parts = [
            "bootstrapServers: \(bootstrapServers)", "groupID: \(groupID ?? "nil")",
            "autoOffsetReset: \(autoOffsetReset)", "enableAutoCommit: \(enableAutoCommit)",
            "consumerTimeout: \(consumerTimeout)", "maxPollRecords: \(maxPollRecords.map(String.init) ?? "nil")",
            "autoCommitInterval: \(autoCommitInterval)", "connectionTimeout: \(connectionTimeout)",
            "assignmentTimeout: \(assignmentTimeout)", "closeTimeout: \(closeTimeout)",
            "fetchBatchSize: \(fetchBatchSize)", "clientID: \(clientID)",
            "deadLetterTopic: \(deadLetterTopic ?? "nil")", "retryPolicy: \(retryPolicy.attempts) attempts",
            "behindTimeout: \(behindTimeout)", "clusterWaitLimit: \(clusterWaitLimit.map { "\($0)" } ?? "nil")",
        ]
        parts.append("properties: \(RDKafkaConfig.redactedDescription(properties))")
        return "Configuration(\(parts.joined(separator: ", ")))"
    }

    /// The same as ``description``.
    public var debugDescription: String { description }

    /// A mirror without the secret properties' values, so that `dump` and debuggers do
    /// not show them either.
    public var customMirror: Mirror {
        Mirror(self, children: ["description": description], displayStyle: .struct)
    }
}
