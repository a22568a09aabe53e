// ServiceGroup: the consumer as a service of swift-service-lifecycle, with logging and
// metrics bootstrapped. SIGINT or SIGTERM starts a graceful shutdown: the event in hand
// finishes, the offsets are committed, the group is left and `run()` returns. The example
// then prints the consumer's metrics in Prometheus's text format.
//
//   swift run ServiceGroup [--bootstrap-servers localhost:9092]    then press Ctrl-C
import ExampleSupport
import Logging
import Metrics
import Prometheus
import ServiceLifecycle
import Synchronization
import UnixSignals
import WorkflowEvents
import WorkflowEventsService

nonisolated func serviceGroup(_ setting: ExampleSetting) async throws {
    let registry = PrometheusCollectorRegistry()
    MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
    var logger = Logger(label: "workflow-events.example")
    logger.logLevel = .notice

    var configuration = WorkflowEventConsumer.Configuration(
        bootstrapServers: setting.bootstrapServers, groupID: "notifier", properties: setting.properties)
    configuration.statisticsInterval = .seconds(1)
    let counter = HandledCount()
    let service = try WorkflowEventService(configuration: configuration, topics: ["workflow-events"], logger: logger) { event in
        let count = counter.next()
        print("handled \(count): \(event.eventType) of \(event.workflowID)")
    }
    let group = ServiceGroup(services: [service], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
    print("running; stop with Ctrl-C or SIGTERM")
    try await group.run()
    let health = await service.consumer.health
    print("stopped: consumer closed \(health.isClosed), last error \(health.lastError ?? "none")")
    for line in registry.emitToString().split(separator: "\n") where line.hasPrefix("workflow_events_consumer_") {
        print(line)
    }
}

/// Events handled so far.
final class HandledCount: Sendable {
    private let count = Mutex(0)
    func next() -> Int {
        count.withLock {
            $0 += 1
            return $0
        }
    }
}

await runExample("ServiceGroup", serviceGroup)
