internal import CRDKafka
import Dispatch
import Synchronization
public import WorkflowEvents

/// A Kafka cluster inside this process: librdkafka's mock cluster, whose brokers speak the
/// real Kafka protocol over TCP on 127.0.0.1, so any client can use it.
///
/// Use it to test consumers and producers without a broker:
/// ```swift
/// try await withMockKafkaCluster(brokers: 3) { cluster in
///     try cluster.createTopic("workflow-events", partitions: 6)
///     let consumer = try WorkflowEventConsumer(bootstrapServers: cluster.bootstrapServers, groupID: "test")
///     ...
/// }
/// ```
/// Its fault switches take brokers down, slow them, move partition leaders and inject
/// request errors. The mock keeps about 5 MB per partition and drops older messages.
///
/// Unlike a real broker, the mock holds a group's next join for the leaving member's
/// session timeout less one second once a member leaves: a
/// restarted member waits 44 s with librdkafka's 45 s default `session.timeout.ms`. Give
/// consumers `session.timeout.ms` 6000 (``fastRestartProperties``) to restart in seconds.
///
/// Close it with ``shutdown()`` (or use ``withMockKafkaCluster(brokers:_:)``) once every
/// client that uses it is closed.
public final class MockKafkaCluster: Sendable {
    /// The session timeout with which a member that restarts gets its partitions within
    /// about 5 s on the mock (it waits the session timeout less one second after a leave).
    public static let fastRestartSessionTimeout = Duration.seconds(6)

    /// Consumer properties for restarts within seconds on the mock: `session.timeout.ms`
    /// 6000.
    public static let fastRestartProperties = ["session.timeout.ms": "6000"]

    /// The mock's state. `@unchecked Sendable`: the pointers are set in `init` and released
    /// once by `shutdown()` under the mutex; librdkafka's mock API is thread-safe.
    private struct Handles: @unchecked Sendable {
        let host: OpaquePointer
        let cluster: OpaquePointer
    }

    private let handles: Mutex<Handles?>
    /// `host:port,...` of the brokers, for `bootstrapServers`.
    public let bootstrapServers: String
    /// How many brokers the cluster has; their ids are 1 through `brokerCount`.
    public let brokerCount: Int

    /// Starts a cluster of `brokers` brokers.
    public init(brokers: Int = 1) throws {
        guard brokers >= 1 else {
            throw WorkflowEventsError(.invalidConfiguration, "a mock cluster needs at least one broker, not \(brokers)")
        }
        guard let conf = rd_kafka_conf_new() else {
            throw WorkflowEventsError(.invalidConfiguration, "librdkafka could not allocate a configuration")
        }
        var errorText = [CChar](repeating: 0, count: 512)
        // The mock's host handle never connects anywhere: only the mock's critical lines (a
        // broker that cannot listen, with the system's reason) reach stderr.
        _ = rd_kafka_conf_set(conf, "log_level", "2", &errorText, errorText.count)
        guard let host = rd_kafka_new(RD_KAFKA_PRODUCER, conf, &errorText, errorText.count) else {
            rd_kafka_conf_destroy(conf)
            let reason = errorText.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            throw WorkflowEventsError(.invalidConfiguration, "librdkafka could not create the mock cluster's handle: \(reason)")
        }
        guard let cluster = rd_kafka_mock_cluster_new(host, Int32(brokers)) else {
            rd_kafka_destroy(host)
            throw WorkflowEventsError(.invalidConfiguration, "librdkafka could not start a mock cluster of \(brokers) brokers")
        }
        bootstrapServers = String(cString: rd_kafka_mock_cluster_bootstraps(cluster))
        brokerCount = brokers
        handles = Mutex(Handles(host: host, cluster: cluster))
    }

    deinit {
        shutdown()
    }

    /// Where clusters are torn down: destroying one joins librdkafka's threads, which must
    /// not hold the caller's thread (a thread of Swift's cooperative pool, in an async test).
    private static let teardownQueue = DispatchQueue(label: "workflow-events.mock-cluster.teardown")

    /// Stops the brokers, and returns at once: the fault switches throw from now on, and the
    /// cluster's threads are joined in the background. Idempotent.
    public func shutdown() {
        shutdown(then: nil)
    }

    /// Stops the brokers and returns once their threads have ended, without blocking a
    /// thread of Swift's cooperative pool meanwhile. Idempotent: a later call returns at once.
    public func shutdownAndWait() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            shutdown(then: { continuation.resume() })
        }
    }

    private func shutdown(then done: (@Sendable () -> Void)?) {
        let taken = handles.withLock { handles in
            defer { handles = nil }
            return handles
        }
        guard let current = taken else {
            done?()
            return
        }
        Self.teardownQueue.async {
            rd_kafka_mock_cluster_destroy(current.cluster)
            rd_kafka_destroy(current.host)
            done?()
        }
    }

    private func withCluster<T>(_ operation: String, _ body: (OpaquePointer) -> T) throws -> T {
        try handles.withLock { handles in
            guard let current = handles else {
                throw WorkflowEventsError(.clientClosed, "cannot \(operation): the mock cluster was shut down")
            }
            return body(current.cluster)
        }
    }

    private func check(_ err: rd_kafka_resp_err_t, _ operation: String) throws {
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else {
            let code = KafkaError.Code(rawValue: err.rawValue)
            throw KafkaError(code: code, message: String(cString: rd_kafka_err2str(err)), operation: operation)
        }
    }

    private func checkBroker(_ broker: Int32) throws {
        guard broker >= 1 && broker <= Int32(brokerCount) else {
            throw WorkflowEventsError(
                .invalidConfiguration, "broker \(broker) does not exist: this cluster's brokers are 1 through \(brokerCount)")
        }
    }

    /// Creates a topic. The replication factor defaults to the number of brokers, at most 3.
    public func createTopic(_ name: String, partitions: Int = 1, replicationFactor: Int? = nil) throws {
        guard partitions >= 1 else {
            throw WorkflowEventsError(.invalidConfiguration, "topic '\(name)' needs at least one partition, not \(partitions)")
        }
        let replicas = replicationFactor ?? min(brokerCount, 3)
        guard replicas >= 1 && replicas <= brokerCount else {
            throw WorkflowEventsError(
                .invalidConfiguration,
                "topic '\(name)': replication factor \(replicas) needs between 1 and \(brokerCount) brokers")
        }
        let err = try withCluster("create topic '\(name)'") {
            rd_kafka_mock_topic_create($0, name, Int32(partitions), Int32(replicas))
        }
        try check(err, "create topic '\(name)'")
    }

    /// Takes a broker down: its connections close and it refuses new ones.
    ///
    /// The mock closes the broker's listening socket and binds its port again at once, to keep
    /// it. A child process being started holds a copy of every descriptor of this process
    /// until it runs its program, so the closed listener may still listen there: the bind
    /// fails, and librdkafka's mock aborts the process. Start child processes inside
    /// ``whileNoBrokerGoesDown(_:)``, which this waits for.
    public func setBrokerDown(_ broker: Int32) throws {
        try checkBroker(broker)
        try Self.goingDown.withLock { _ in
            try check(try withCluster("take broker \(broker) down") { rd_kafka_mock_broker_set_down($0, broker) }, "take broker \(broker) down")
        }
    }

    /// Held while a broker of a mock cluster in this process goes down, and while a child
    /// process is started.
    private static let goingDown = Mutex(())

    /// Runs `body` (which starts a child process: `posix_spawn`, `fork`, `Process.run()`)
    /// while no broker of a mock cluster in this process is being taken down. See
    /// ``setBrokerDown(_:)``.
    public static func whileNoBrokerGoesDown<T>(_ body: () throws -> T) rethrows -> T {
        try goingDown.withLock { _ in try body() }
    }

    /// Brings a broker back up.
    public func setBrokerUp(_ broker: Int32) throws {
        try checkBroker(broker)
        try check(try withCluster("bring broker \(broker) up") { rd_kafka_mock_broker_set_up($0, broker) }, "bring broker \(broker) up")
    }

    /// Delays every response of a broker by `delay`.
    public func setRoundTripTime(_ delay: Duration, broker: Int32) throws {
        try checkBroker(broker)
        let milliseconds = Int32(clamping: delay.components.seconds * 1000 + delay.components.attoseconds / 1_000_000_000_000_000)
        try check(
            try withCluster("set the round-trip time of broker \(broker)") { rd_kafka_mock_broker_set_rtt($0, broker, milliseconds) },
            "set the round-trip time of broker \(broker)")
    }

    /// Makes `broker` the leader of a partition.
    public func setPartitionLeader(topic: String, partition: Int32, broker: Int32) throws {
        try checkBroker(broker)
        try check(
            try withCluster("move the leader of \(topic)[\(partition)]") {
                rd_kafka_mock_partition_set_leader($0, topic, partition, broker)
            }, "move the leader of \(topic)[\(partition)]")
    }

    /// Makes `broker` the coordinator of a consumer group.
    public func setGroupCoordinator(group: String, broker: Int32) throws {
        try checkBroker(broker)
        try check(
            try withCluster("move the coordinator of group '\(group)'") { rd_kafka_mock_coordinator_set($0, "group", group, broker) },
            "move the coordinator of group '\(group)'")
    }

    /// The Kafka requests whose errors can be injected.
    public struct Request: Hashable, Sendable {
        /// The Kafka protocol API key.
        public let apiKey: Int16
        /// Any request type, by its Kafka API key.
        public init(apiKey: Int16) { self.apiKey = apiKey }

        /// Produce requests.
        public static let produce = Request(apiKey: 0)
        /// Fetch requests.
        public static let fetch = Request(apiKey: 1)
        /// ListOffsets requests.
        public static let listOffsets = Request(apiKey: 2)
        /// Metadata requests.
        public static let metadata = Request(apiKey: 3)
        /// OffsetCommit requests.
        public static let offsetCommit = Request(apiKey: 8)
        /// OffsetFetch requests.
        public static let offsetFetch = Request(apiKey: 9)
        /// FindCoordinator requests.
        public static let findCoordinator = Request(apiKey: 10)
        /// JoinGroup requests.
        public static let joinGroup = Request(apiKey: 11)
        /// Heartbeat requests.
        public static let heartbeat = Request(apiKey: 12)
        /// LeaveGroup requests.
        public static let leaveGroup = Request(apiKey: 13)
        /// SyncGroup requests.
        public static let syncGroup = Request(apiKey: 14)
    }

    /// Makes the next requests of this kind fail, one error each, in order.
    public func pushRequestErrors(_ request: Request, _ errors: [KafkaError.Code]) throws {
        var codes = errors.map { rd_kafka_resp_err_t(rawValue: $0.rawValue) }
        try withCluster("inject errors") { cluster in
            codes.withUnsafeMutableBufferPointer { buffer in
                rd_kafka_mock_push_request_errors_array(cluster, request.apiKey, buffer.count, buffer.baseAddress)
            }
        }
    }

    /// Clears the errors injected for this kind of request.
    public func clearRequestErrors(_ request: Request) throws {
        try withCluster("clear injected errors") { rd_kafka_mock_clear_request_errors($0, request.apiKey) }
    }
}

/// Runs `body` with a new mock cluster and shuts it down however `body` ends.
public func withMockKafkaCluster<Result>(
    brokers: Int = 1,
    isolation: isolated (any Actor)? = #isolation,
    _ body: (MockKafkaCluster) async throws -> sending Result
) async throws -> sending Result {
    let cluster = try MockKafkaCluster(brokers: brokers)
    do {
        let result = try await body(cluster)
        await cluster.shutdownAndWait()
        return result
    } catch {
        await cluster.shutdownAndWait()
        throw error
    }
}
