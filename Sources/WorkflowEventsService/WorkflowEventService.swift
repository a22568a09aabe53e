public import Logging
public import ServiceLifecycle
public import WorkflowEvents

/// A workflow-event consumer as a swift-service-lifecycle `Service`.
///
/// In a `ServiceGroup`, graceful shutdown (SIGTERM, when the group lists it) lets the event
/// in hand finish, commits, leaves the group and returns from `run()`; cancellation does
/// the same without waiting for the handler. A handler that throws is retried, logged,
/// counted and dead-lettered as the configuration says, and the next event follows. Started
/// before Kafka, it waits for the cluster (see ``WorkflowEventConsumer/Configuration/clusterWaitLimit``),
/// its consumer's health not ready meanwhile.
///
///     let service = try WorkflowEventService(configuration: configuration, topics: ["workflow-events"], logger: logger) { event in
///         try await handle(event)
///     }
///     let group = ServiceGroup(services: [service], gracefulShutdownSignals: [.sigterm], logger: logger)
///     try await group.run()
public struct WorkflowEventService: Service {
    /// The consumer the service reads with: read its ``WorkflowEventConsumer/health`` or
    /// ``WorkflowEventConsumer/lag()`` from elsewhere.
    public let consumer: WorkflowEventConsumer
    private let topics: [String]
    private let maxConcurrency: Int?
    private let handler: @Sendable (WorkflowEvent) async throws -> Void

    /// A service that calls `handler` with each event of `topics`: one at a time, or, with
    /// `maxConcurrency`, through
    /// ``WorkflowEventConsumer/process(topics:maxConcurrency:orderingKey:limits:_:)`` (up to
    /// that many at once, each workflow's events in order).
    public init(
        configuration: WorkflowEventConsumer.Configuration, topics: [String], maxConcurrency: Int? = nil,
        logger: Logger = Logger(label: "workflow-events.service"),
        handler: @escaping @Sendable (WorkflowEvent) async throws -> Void
    ) throws {
        try self.init(
            consumer: WorkflowEventConsumer(configuration: configuration, logger: logger), topics: topics,
            maxConcurrency: maxConcurrency, handler: handler)
    }

    /// A service over a consumer already made (the tests' one, over the in-memory client).
    package init(
        consumer: WorkflowEventConsumer, topics: [String], maxConcurrency: Int? = nil,
        handler: @escaping @Sendable (WorkflowEvent) async throws -> Void
    ) {
        self.consumer = consumer
        self.topics = topics
        self.maxConcurrency = maxConcurrency
        self.handler = handler
    }

    /// Reads until graceful shutdown or cancellation, then commits, leaves the group and
    /// closes the consumer.
    public func run() async throws {
        let consumer = self.consumer
        let topics = self.topics
        let handler = self.handler
        let maxConcurrency = self.maxConcurrency
        do {
            if let maxConcurrency {
                // process() drains on cancellation: graceful shutdown cancels it.
                try await cancelWhenGracefulShutdown {
                    // A service may start before Kafka: it waits for the cluster.
                    guard try await consumer.waitForCluster() else { return }
                    try await consumer.process(topics: topics, maxConcurrency: maxConcurrency, handler)
                }
            } else {
                _ = try await withGracefulShutdownHandler {
                    try await consumer.serve(topics: topics, handler)
                } onGracefulShutdown: {
                    consumer.stopServing()
                }
            }
        } catch {
            await consumer.close()
            throw error
        }
        await consumer.close()
    }
}
