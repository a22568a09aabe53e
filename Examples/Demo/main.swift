// The demo: starts an embedded Kafka cluster, produces sample workflow events of every kind,
// and consumes them with a consumer group, printing each as it arrives. Stops by itself.
//
//   swift run workflow-events-demo [--events N] [--duration SECONDS]
import Foundation
import Logging
import WorkflowEvents
import WorkflowEventsTesting

struct DemoOptions {
    var events = 60
    var duration: Duration = .seconds(20)

    init(arguments: [String]) throws {
        var iterator = arguments.dropFirst().makeIterator()
        while let argument = iterator.next() {
            switch argument {
            case "--events":
                guard let text = iterator.next(), let value = Int(text), value > 0 else {
                    throw DemoError("--events needs a positive number")
                }
                events = value
            case "--duration":
                guard let text = iterator.next(), let value = Double(text), value > 0 else {
                    throw DemoError("--duration needs a positive number of seconds")
                }
                duration = .milliseconds(Int64(value * 1000))
            case "--help", "-h":
                print("usage: workflow-events-demo [--events N] [--duration SECONDS]")
                exit(0)
            default:
                throw DemoError("unknown argument '\(argument)'; try --help")
            }
        }
    }
}

struct DemoError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Runs off the main actor: a `nonisolated` async function executes on the global pool.
nonisolated func runDemo(_ options: DemoOptions) async throws {
    try await withMockKafkaCluster(brokers: 1) { cluster in
        try cluster.createTopic("workflow-events", partitions: 3)
        print("Embedded Kafka cluster at \(cluster.bootstrapServers), topic workflow-events (3 partitions)")

        let producer = try WorkflowEventProducer(bootstrapServers: cluster.bootstrapServers)
        let events = SampleEvents.make(count: options.events)
        let reports = try await producer.send(events, to: "workflow-events")
        await producer.close()
        print("Produced \(reports.count) events; consuming with group 'demo' (joining takes a few seconds)...")

        let configuration = WorkflowEventConsumer.Configuration(bootstrapServers: cluster.bootstrapServers, groupID: "demo")
        let received = try await withWorkflowEventConsumer(configuration: configuration) { consumer in
            try await withThrowingTaskGroup(of: Int.self) { group in
                group.addTask {
                    var count = 0
                    for try await message in consumer.messages(topics: ["workflow-events"]) {
                        count += 1
                        let event = message.event
                        let time = event.timestamp.formatted(.iso8601.time(includingFractionalSeconds: true))
                        let data = event.payload.data.keys.sorted().map { "\($0)=\(describe(event.payload.data[$0]!))" }
                        print(
                            "[p\(message.partition) @\(message.offset)] \(time) \(event.eventType.rawValue.padding(toLength: 18, withPad: " ", startingAt: 0)) \(event.source.rawValue.padding(toLength: 14, withPad: " ", startingAt: 0)) \(event.workflowID) \(event.workflowRunID ?? "-") \(data.joined(separator: " "))"
                        )
                        if count == options.events { break }
                    }
                    return count
                }
                group.addTask {
                    try await Task.sleep(for: options.duration)
                    return -1
                }
                let first = try await group.next()!
                group.cancelAll()
                return first
            }
        }
        if received < 0 {
            print("Stopped after \(options.duration) before every event arrived.")
        } else {
            print("Consumed all \(received) events in order per partition; the consumer committed and left the group.")
        }
    }
}

func describe(_ value: JSONValue) -> String {
    switch value {
    case .string(let text): return text
    case .int(let number): return String(number)
    case .double(let number): return String(number)
    case .bool(let flag): return String(flag)
    case .null: return "null"
    case .array(let elements): return "[" + elements.map(describe).joined(separator: ",") + "]"
    case .object: return "{...}"
    }
}

do {
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = .warning
        return handler
    }
    try await runDemo(DemoOptions(arguments: CommandLine.arguments))
} catch {
    FileHandle.standardError.write(Data("workflow-events-demo: \(error)\n".utf8))
    exit(1)
}
