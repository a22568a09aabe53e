import Foundation
public import Logging

/// Runs `body` with a new consumer and closes it however `body` ends: returning, throwing or
/// being cancelled (the seed's `with WorkflowEventConsumer(...) as consumer:`).
public func withWorkflowEventConsumer<Result>(
    configuration: WorkflowEventConsumer.Configuration,
    logger: Logger = Logger(label: "workflow-events.consumer"),
    isolation: isolated (any Actor)? = #isolation,
    _ body: (WorkflowEventConsumer) async throws -> sending Result
) async throws -> sending Result {
    let consumer = try WorkflowEventConsumer(configuration: configuration, logger: logger)
    let result: Result
    do {
        result = try await body(consumer)
    } catch {
        await consumer.close()
        throw error
    }
    await consumer.close()
    return result
}

/// Runs `body` with a new consumer made from the seed guide's settings (and librdkafka
/// `properties`, such as TLS and SASL settings), and closes it however `body` ends.
public func withWorkflowEventConsumer<Result>(
    bootstrapServers: String = "localhost:9092",
    groupID: String? = nil,
    autoOffsetReset: WorkflowEventConsumer.AutoOffsetReset = .earliest,
    enableAutoCommit: Bool = true,
    consumerTimeout: Duration = .milliseconds(1000),
    maxPollRecords: Int? = nil,
    properties: [String: String] = [:],
    logger: Logger = Logger(label: "workflow-events.consumer"),
    isolation: isolated (any Actor)? = #isolation,
    _ body: (WorkflowEventConsumer) async throws -> sending Result
) async throws -> sending Result {
    try await withWorkflowEventConsumer(
        configuration: .init(
            bootstrapServers: bootstrapServers, groupID: groupID, autoOffsetReset: autoOffsetReset,
            enableAutoCommit: enableAutoCommit, consumerTimeout: consumerTimeout, maxPollRecords: maxPollRecords,
            properties: properties),
        logger: logger, body)
}
