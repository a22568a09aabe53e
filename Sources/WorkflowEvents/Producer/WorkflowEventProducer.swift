public import Logging
import Tracing

/// Writes workflow events to Kafka in the contract form, keyed by `workflowID` so that one
/// workflow's events stay in order on one partition.
///
/// Idempotence is on by default: a retried send is never written twice, and events sent in
/// order to a partition are stored in that order.
public actor WorkflowEventProducer {
    /// The settings of a producer.
    public struct Configuration: Sendable {
        /// Comma-separated `host:port` list of brokers to bootstrap from.
        public var bootstrapServers: String
        /// The client id the brokers see (`client.id`).
        public var clientID: String
        /// librdkafka's `enable.idempotence`.
        public var enableIdempotence: Bool
        /// How long librdkafka waits to fill a batch (`linger.ms`).
        public var linger: Duration
        /// How long a message may take to be delivered, retries included (`message.timeout.ms`).
        public var deliveryTimeout: Duration
        /// Any librdkafka property, applied last.
        public var properties: [String: String]

        /// Creates a configuration; every parameter has a default.
        public init(
            bootstrapServers: String = "localhost:9092",
            clientID: String = "swift-workflow-events",
            enableIdempotence: Bool = true,
            linger: Duration = .milliseconds(5),
            deliveryTimeout: Duration = .seconds(30),
            properties: [String: String] = [:]
        ) {
            self.bootstrapServers = bootstrapServers
            self.clientID = clientID
            self.enableIdempotence = enableIdempotence
            self.linger = linger
            self.deliveryTimeout = deliveryTimeout
            self.properties = properties
        }

        func librdkafkaProperties() throws -> [(String, String)] {
            guard !bootstrapServers.isEmpty else {
                throw WorkflowEventsError(.invalidConfiguration, "bootstrapServers is empty: give at least one host:port")
            }
            var result: [(String, String)] = [
                ("bootstrap.servers", bootstrapServers),
                ("client.id", clientID),
                ("enable.idempotence", enableIdempotence ? "true" : "false"),
                ("linger.ms", String(linger.milliseconds)),
                ("message.timeout.ms", String(deliveryTimeout.milliseconds)),
            ]
            for key in properties.keys.sorted() { result.append((key, properties[key]!)) }
            return result
        }
    }

    /// The settings this producer was made with.
    public nonisolated let configuration: Configuration
    nonisolated let client: RDKafkaProducerClient
    private let logger: Logger
    private var isClosed = false

    /// Creates a producer with default settings but the bootstrap servers and librdkafka
    /// `properties` (such as TLS and SASL settings).
    public init(
        bootstrapServers: String = "localhost:9092",
        properties: [String: String] = [:],
        logger: Logger = Logger(label: "workflow-events.producer")
    ) throws {
        try self.init(configuration: Configuration(bootstrapServers: bootstrapServers, properties: properties), logger: logger)
    }

    /// Creates a producer.
    ///
    /// - Throws: ``WorkflowEventsError`` `invalidConfiguration` when a setting or a librdkafka
    ///   property is rejected.
    public init(configuration: Configuration, logger: Logger = Logger(label: "workflow-events.producer")) throws {
        self.configuration = configuration
        self.logger = logger
        self.client = try RDKafkaProducerClient(properties: configuration.librdkafkaProperties(), logger: logger)
    }

    /// The contract's headers for an event: content type and event type.
    public static func headers(for event: WorkflowEvent) -> [KafkaHeader] {
        [
            KafkaHeader(name: "content-type", string: "application/json"),
            KafkaHeader(name: "event-type", string: event.eventType.rawValue),
        ]
    }

    /// Sends one event and waits for the broker to store it. The current trace context
    /// (`ServiceContext.current`) goes with it in the headers, through the bootstrapped
    /// instrument.
    ///
    /// - Parameters:
    ///   - event: the event, written in the contract's form and keyed by its `workflowID`.
    ///   - topic: the topic to write to.
    ///   - headers: sent after the contract's `content-type` and `event-type` (a
    ///     `traceparent`, for example).
    /// - Returns: the partition and offset the event was written at.
    public func send(_ event: WorkflowEvent, to topic: String, headers: [KafkaHeader] = []) async throws -> DeliveryReport {
        let id = try await enqueue(event, to: topic, headers: headers)
        return try await client.deliveries.wait(for: id)
    }

    /// Sends events in the order given (so each workflow's events keep their order) and waits
    /// until all are stored. Far faster than awaiting each `send`.
    ///
    /// - Throws: when an event cannot be sent, after waiting for the deliveries of the
    ///   events before it; the error names the event and says how many before it were
    ///   stored. When a delivery fails, the first failure, once every delivery has ended.
    public func send(_ events: [WorkflowEvent], to topic: String) async throws -> [DeliveryReport] {
        var ids: [UInt] = []
        ids.reserveCapacity(events.count)
        for (index, event) in events.enumerated() {
            // A long batch lets other tasks run now and then instead of holding a thread of
            // the cooperative pool until every event is encoded and handed over.
            if index % 256 == 255 { await Task.yield() }
            do {
                ids.append(try await enqueue(event, to: topic, headers: []))
            } catch {
                // The events before it are on their way: wait for them, so that the caller
                // knows what was stored and nothing is left waiting.
                var stored = 0
                for id in ids { if (try? await client.deliveries.wait(for: id)) != nil { stored += 1 } }
                let summary =
                    "event \(index) of \(events.count) (\(event.eventID)) was not sent, and neither were those after it; of the \(index) before it, \(stored) were stored"
                if let error = error as? WorkflowEventsError { throw WorkflowEventsError(error.code, "\(summary): \(error.message)") }
                if let error = error as? KafkaError {
                    throw KafkaError(
                        code: error.code, message: "\(summary): \(error.message)", operation: error.operation,
                        isFatal: error.isFatal, isRetriable: error.isRetriable)
                }
                throw error
            }
        }
        var reports: [DeliveryReport] = []
        reports.reserveCapacity(ids.count)
        var firstFailure: (any Error)?
        for id in ids {
            do {
                reports.append(try await client.deliveries.wait(for: id))
            } catch {
                firstFailure = firstFailure ?? error
            }
        }
        if let firstFailure { throw firstFailure }
        return reports
    }

    /// Sends raw bytes, valid or not (a nil value is a tombstone), and waits for the broker.
    /// For tools, tests and dead letters; events go through ``send(_:to:headers:)``.
    public func sendRecord(
        value: [UInt8]?, key: [UInt8]? = nil, headers: [KafkaHeader] = [], to topic: String, partition: Int32? = nil
    ) async throws -> DeliveryReport {
        let id = try await enqueueRecord(topic: topic, partition: partition, key: key, value: value, headers: headers)
        return try await client.deliveries.wait(for: id)
    }

    deinit {
        // Released without `close()`: its outstanding messages still get `deliveryTimeout`,
        // then the polling thread ends and the handle is destroyed.
        if !isClosed { client.closeAndDestroyInBackground(timeout: configuration.deliveryTimeout) }
    }

    /// Waits until every message sent so far is delivered, at most `timeout`.
    public func flush(timeout: Duration = .seconds(30)) async throws {
        try checkOpen("flush")
        try await client.flush(timeout: timeout)
    }

    /// Delivers what is outstanding (waiting at most `timeout`), fails what is left, and
    /// destroys the handle. Idempotent; later sends throw `clientClosed`.
    public func close(timeout: Duration = .seconds(30)) async {
        guard !isClosed else { return }
        isClosed = true
        await client.closeAndDestroy(timeout: timeout)
    }

    private func checkOpen(_ operation: String) throws {
        guard !isClosed else {
            throw WorkflowEventsError(.clientClosed, "cannot \(operation): the producer is closed; create a new one")
        }
    }

    private func enqueue(_ event: WorkflowEvent, to topic: String, headers: [KafkaHeader]) async throws -> UInt {
        let value: [UInt8]
        do {
            value = try event.jsonBytes()
        } catch {
            throw WorkflowEventsError(.invalidEvent, "event \(event.eventID) cannot be sent: \(error)")
        }
        var allHeaders = Self.headers(for: event) + headers
        // The current trace continues in the consumer (`traceparent` with W3C propagation).
        if let context = ServiceContext.current {
            InstrumentationSystem.instrument.inject(context, into: &allHeaders, using: KafkaHeaderInjector())
        }
        return try await enqueueRecord(
            topic: topic, partition: nil, key: Array(event.workflowID.utf8), value: value, headers: allHeaders)
    }

    /// Hands a message to librdkafka, waiting while its queue is full.
    private func enqueueRecord(
        topic: String, partition: Int32?, key: [UInt8]?, value: [UInt8]?, headers: [KafkaHeader]
    ) async throws -> UInt {
        let deadline = ContinuousClock.now.advanced(by: configuration.deliveryTimeout)
        while true {
            try checkOpen("send")
            let result: Result<UInt, KafkaError>
            do {
                result = .success(try client.enqueue(topic: topic, partition: partition, key: key, value: value, headers: headers))
            } catch {
                result = .failure(error)
            }
            switch result {
            case .success(let id):
                return id
            case .failure(let error) where error.code == .queueFull && ContinuousClock.now < deadline:
                try await Task.sleep(for: .milliseconds(1))
            case .failure(let error):
                throw error
            }
        }
    }
}

extension WorkflowEventProducer.Configuration: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// Every setting, with the values of secret properties (passwords, keys, secrets)
    /// replaced by `[redacted]`.
    public var description: String {
        "Configuration(bootstrapServers: \(bootstrapServers), clientID: \(clientID), enableIdempotence: \(enableIdempotence), "
            + "linger: \(linger), deliveryTimeout: \(deliveryTimeout), properties: \(RDKafkaConfig.redactedDescription(properties)))"
    }

    /// The same as ``description``.
    public var debugDescription: String { description }

    /// A mirror without the secret properties' values.
    public var customMirror: Mirror {
        Mirror(self, children: ["description": description], displayStyle: .struct)
    }
}
