// GracefulShutdown: a service loop that SIGINT (Ctrl-C) or SIGTERM ends cleanly. The signal
// cancels the task that iterates the stream; the consumer then commits what was processed,
// leaves the group (its partitions move to another member at once) and closes. The example
// then shows the group's committed offsets: every processed event is in them.
//
//   swift run GracefulShutdown [--bootstrap-servers localhost:9092]    then press Ctrl-C
import Dispatch
import ExampleSupport
import Foundation
import WorkflowEvents

nonisolated func gracefulShutdown(_ setting: ExampleSetting) async throws {
    let servers = setting.bootstrapServers
    let service = Task {
        try await withWorkflowEventConsumer(bootstrapServers: servers, groupID: "graceful", properties: setting.properties) { consumer in
            var processed = 0
            for try await event in consumer.events(topics: ["workflow-events"]) {
                processed += 1
                print("processed \(processed): \(event.eventType) of \(event.workflowID)")
            }
            return processed  // reached when the task is cancelled: the stream ends, nothing is thrown
        }
    }
    // Signals are delivered to a dispatch source instead of killing the process.
    let sources = [SIGINT, SIGTERM].map { number in
        signal(number, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
        source.setEventHandler {
            print("received \(number == SIGINT ? "SIGINT" : "SIGTERM"): stopping")
            service.cancel()
        }
        source.resume()
        return source
    }
    print("consuming; stop with Ctrl-C or SIGTERM (pid \(getpid()))")
    let processed = try await service.value
    for source in sources { source.cancel() }
    print("stopped after \(processed) events; offsets committed and the group left")

    // A fresh look at the group, without joining it: the commits made on the way out.
    try await withWorkflowEventConsumer(bootstrapServers: servers, groupID: "graceful", properties: setting.properties) { consumer in
        let lag = try await consumer.lag(topics: ["workflow-events"])
        let committed = lag.reduce(0) { $0 + ($1.committedOffset ?? 0) }
        print("group 'graceful' has committed \(committed) events; lag \(lag.reduce(0) { $0 + $1.lag })")
    }
}

await runExample("GracefulShutdown", gracefulShutdown)
