import ArgumentParser
import Foundation
import WorkflowEvents
import WorkflowEventsTesting

struct Broker: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run an embedded Kafka cluster for local development until interrupted.",
        discussion: """
            The cluster is librdkafka's mock cluster: it speaks the Kafka protocol on loopback, \
            keeps everything in memory (about 1 MB per partition before it drops the oldest \
            records), and is gone when the command ends. Topics not created up front are created \
            on first use with one partition.
            """
    )

    @Option(help: "How many brokers.")
    var brokers: Int = 1

    @Option(
        name: .customLong("topic"),
        help: "A topic to create, as NAME or NAME:PARTITIONS; repeat for several (default: workflow-events:3).")
    var topics: [TopicSpec] = []

    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        if !(1...16).contains(brokers) { throw ValidationError("--brokers must be between 1 and 16") }
    }

    func run() async throws {
        _ = logging.bootstrap(label: "workflow-events.broker")
        let topics = self.topics.isEmpty ? [TopicSpec(name: "workflow-events", partitions: 3)] : self.topics
        let brokers = self.brokers
        try await reportingFailures("broker") {
            try await cancellingOnInterrupt {
                try await serve(brokers: brokers, topics: topics)
            }
        }
    }
}

/// `NAME` or `NAME:PARTITIONS`.
struct TopicSpec: ExpressibleByArgument, Sendable {
    var name: String
    var partitions: Int

    init(name: String, partitions: Int) {
        self.name = name
        self.partitions = partitions
    }

    init?(argument: String) {
        let parts = argument.split(separator: ":", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), !parts[0].isEmpty else { return nil }
        name = String(parts[0])
        if parts.count == 2 {
            guard let count = Int(parts[1]), count >= 1 else { return nil }
            partitions = count
        } else {
            partitions = 1
        }
    }
}

private nonisolated func serve(brokers: Int, topics: [TopicSpec]) async throws {
    let cluster = try MockKafkaCluster(brokers: brokers)
    defer { cluster.shutdown() }
    for topic in topics {
        try cluster.createTopic(topic.name, partitions: topic.partitions, replicationFactor: min(brokers, 3))
    }
    writeLine("Embedded Kafka cluster with \(brokers) broker\(brokers == 1 ? "" : "s"); stop it with Ctrl-C.")
    writeLine("bootstrap servers: \(cluster.bootstrapServers)")
    for topic in topics {
        writeLine("topic \(topic.name): \(topic.partitions) partition\(topic.partitions == 1 ? "" : "s")")
    }
    writeLine("export WORKFLOW_EVENTS_BOOTSTRAP_SERVERS=\(cluster.bootstrapServers)")
    writeLine(
        "consumer groups: a member that restarts waits its session timeout (45 s by default) here, unlike on a real broker; give consumers -X session.timeout.ms=6000 to restart within seconds"
    )
    // Serve until the task is cancelled by SIGINT or SIGTERM.
    while !Task.isCancelled {
        try? await Task.sleep(for: .seconds(3600))
    }
    printError("stopping the embedded cluster")
}
