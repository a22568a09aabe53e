@preconcurrency import Glibc  // stdout and stderr are C globals
import Logging
import WorkflowEvents
import WorkflowEventsTesting

/// Where an example runs, as its command line chose.
public struct ExampleSetting: Sendable {
    /// The brokers to connect to: `--bootstrap-servers`, or the embedded cluster's.
    public let bootstrapServers: String
    /// Whether the example runs against an embedded cluster of its own.
    public let isEmbedded: Bool
    /// How many sample events were sent to each topic before the example started.
    public let sampleEvents: Int
}

/// Runs an example: against the brokers given by `--bootstrap-servers HOSTS`, or else an
/// embedded cluster with `topics` created (name: partitions). Either way, first sends
/// `sampleEvents` sample events to each topic. Logs go to stderr; an error is one line on
/// stderr and exit status 1.
public nonisolated func runExample(
    _ name: String,
    topics: KeyValuePairs<String, Int> = ["workflow-events": 3],
    sampleEvents: Int = 30,
    _ body: @Sendable (ExampleSetting) async throws -> Void
) async {
    setvbuf(stdout, nil, _IOLBF, 0)  // each line as it is printed, also into a pipe
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = .warning
        return handler
    }
    do {
        var servers: String?
        var arguments = CommandLine.arguments.dropFirst().makeIterator()
        while let argument = arguments.next() {
            switch argument {
            case "--bootstrap-servers":
                guard let value = arguments.next(), !value.isEmpty else {
                    throw ExampleFailure("--bootstrap-servers needs a host:port list")
                }
                servers = value
            case "--help", "-h":
                print("usage: \(name) [--bootstrap-servers HOST:PORT,...]  (default: an embedded cluster)")
                return
            default:
                throw ExampleFailure("unknown argument '\(argument)'; the only option is --bootstrap-servers")
            }
        }
        let cluster = servers == nil ? try MockKafkaCluster() : nil
        defer { cluster?.shutdown() }
        if let cluster {
            for (topic, partitions) in topics { try cluster.createTopic(topic, partitions: partitions) }
        }
        let setting = ExampleSetting(
            bootstrapServers: servers ?? cluster!.bootstrapServers, isEmbedded: cluster != nil, sampleEvents: sampleEvents)
        let producer = try WorkflowEventProducer(bootstrapServers: setting.bootstrapServers)
        var generator = SampleEvents.Generator(seed: UInt64(time(nil)))
        var sequence = 0
        for (topic, _) in topics {
            let events = (0..<sampleEvents).map { _ in
                defer { sequence += 1 }
                return generator.next(sequence: sequence)
            }
            _ = try await producer.send(events, to: topic)
        }
        await producer.close()
        print(
            "[\(name)] \(setting.isEmbedded ? "embedded cluster" : "brokers") at \(setting.bootstrapServers); sent \(sampleEvents) sample events to \(topics.map(\.key).joined(separator: ", "))"
        )
        try await body(setting)
    } catch {
        fputs("\(name): \(error)\n", stderr)
        exit(1)
    }
}

struct ExampleFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
