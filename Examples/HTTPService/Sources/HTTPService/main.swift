// A service that consumes workflow events and answers /healthz, /lag and /stats over HTTP,
// both in one ServiceGroup. The HTTP server is listed first: the group shuts its services
// down in reverse order, so the consumer finishes the event in hand, commits and leaves the
// group while /healthz still answers; the server stops last.
//
//   WORKFLOW_EVENTS_BOOTSTRAP_SERVERS=host:9092 PORT=8080 swift run HTTPService
import Foundation
import Hummingbird
import Logging
import ServiceLifecycle
import Synchronization
import WorkflowEvents
import WorkflowEventsService

/// How many events the service has handled, for /stats.
final class Handled: Sendable {
    private let count = Atomic<Int>(0)
    func add() { count.add(1, ordering: .relaxed) }
    var value: Int { count.load(ordering: .relaxed) }
}

@main
struct HTTPService {
    static func main() async {
        let logger = {
            var logger = Logger(label: "http-service")
            logger.logLevel = .info
            return logger
        }()
        let environment = ProcessInfo.processInfo.environment
        let servers = environment["WORKFLOW_EVENTS_BOOTSTRAP_SERVERS"] ?? "localhost:9092"
        let port = environment["PORT"].flatMap { Int($0) } ?? 8080
        let topic = environment["TOPIC"] ?? "workflow-events"
        do {
            let configuration = WorkflowEventConsumer.Configuration(bootstrapServers: servers, groupID: "http-service")
            let handled = Handled()
            let workflowEvents = try WorkflowEventService(configuration: configuration, topics: [topic], logger: logger) { event in
                logger.debug("handled", metadata: ["event.id": "\(event.eventID)", "event.type": "\(event.eventType)"])
                handled.add()
            }
            let consumer = workflowEvents.consumer

            let router = Router()
            // Ready once the consumer reads (or is a standby member of a stable group).
            router.get("healthz") { _, _ -> Response in
                let health = await consumer.health
                return Response(
                    status: health.isReady ? .ok : .serviceUnavailable,
                    body: ResponseBody(byteBuffer: ByteBuffer(string: "\(health.isReady ? "ready" : "not ready"): \(health)\n")))
            }
            // Committed offset, end and lag of each partition this member reads, asked of the brokers.
            router.get("lag") { _, _ -> String in
                let rows = try await consumer.lag()
                return rows.map { "\($0.partition) committed=\($0.committedOffset.map(String.init) ?? "-") end=\($0.endOffset) lag=\($0.lag)" }
                    .joined(separator: "\n") + "\n"
            }
            router.get("stats") { _, _ -> String in
                "handled=\(handled.value) \(await consumer.statistics)\n"
            }
            let server = Application(
                router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)), logger: logger)

            let group = ServiceGroup(services: [server, workflowEvents], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
            try await group.run()
        } catch {
            logger.error("the service stopped", metadata: ["error": "\(error)"])
            exit(1)
        }
    }
}
