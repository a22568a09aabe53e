@preconcurrency import Glibc  // stdout and stderr are C globals
import Logging
import WorkflowEvents
import WorkflowEventsTesting

/// Where an example runs, as its command line chose.
public struct ExampleSetting: Sendable {
    /// The brokers to connect to: `--bootstrap-servers`, or the embedded cluster's.
    public let bootstrapServers: String
    /// librdkafka properties: of `--config FILE` (or the file `$WORKFLOW_EVENTS_CONFIG`
    /// names), then of each `-X/--property key=value`.
    public let properties: [String: String]
    /// Whether the example runs against an embedded cluster of its own.
    public let isEmbedded: Bool
    /// How many sample events were sent to each topic before the example started.
    public let sampleEvents: Int
}

/// Runs an example: against the brokers given by `--bootstrap-servers HOSTS` (with the
/// librdkafka properties of `--config FILE` and `-X key=value`, as `workflow-events`
/// takes them), or else an embedded cluster with `topics` created (name: partitions). Either way, first sends
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
    var loaded: KafkaProperties?
    do {
        var servers: String?
        var configFile: String?
        var settings: [String] = []
        var arguments = CommandLine.arguments.dropFirst().makeIterator()
        func value(of option: String) throws -> String {
            guard let value = arguments.next(), !value.isEmpty else { throw ExampleFailure("\(option) needs a value") }
            return value
        }
        while let argument = arguments.next() {
            switch argument {
            case "--bootstrap-servers": servers = try value(of: argument)
            case "--config": configFile = try value(of: argument)
            case "-X", "--property": settings.append(try value(of: argument))
            case "--help", "-h":
                print(
                    "usage: \(name) [--bootstrap-servers HOST:PORT,...] [--config FILE] [-X key=value ...]  (default: an embedded cluster)")
                return
            default:
                throw ExampleFailure("unknown argument '\(argument)'; the options are --bootstrap-servers, --config and -X/--property")
            }
        }
        let properties = try KafkaProperties(configFile: configFile, settings: settings)
        loaded = properties
        let cluster = servers == nil ? try MockKafkaCluster() : nil
        defer { cluster?.shutdown() }
        if let cluster {
            for (topic, partitions) in topics { try cluster.createTopic(topic, partitions: partitions) }
        }
        let setting = ExampleSetting(
            bootstrapServers: servers ?? cluster!.bootstrapServers, properties: properties.values, isEmbedded: cluster != nil,
            sampleEvents: sampleEvents)
        let producer = try WorkflowEventProducer(bootstrapServers: setting.bootstrapServers, properties: setting.properties)
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
        // Where a property it names was set, and no secret's value.
        fputs("\(name): \(loaded?.explain(error) ?? "\(error)")\n", stderr)
        exit(1)
    }
}

struct ExampleFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
