import ArgumentParser
import Foundation
import Logging
import Synchronization
import WorkflowEvents
import WorkflowEventsTesting

struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Produce sample events to an embedded cluster and consume them with a group.",
        discussion: """
            Starts an embedded Kafka cluster, sends realistic events of every type at a steady \
            pace, and prints each as a consumer group receives it. Stops by itself once every \
            event has arrived, or after --duration.
            """
    )

    @Option(help: "How many events to produce.")
    var events: Int = 60

    @Option(help: "Stop after this many seconds even if events are missing.")
    var duration: Double = 30

    @Option(help: "Events produced per second.")
    var rate: Double = 20

    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        if events < 1 { throw ValidationError("--events must be at least 1") }
        if !(duration > 0) { throw ValidationError("--duration must be a positive number of seconds") }
        if !(rate > 0) { throw ValidationError("--rate must be a positive number of events per second") }
    }

    func run() async throws {
        let logger = logging.bootstrap(label: "workflow-events.demo")
        let options = self
        try await reportingFailures("demo") {
            let received = try await cancellingOnInterrupt { try await runDemo(options, logger: logger) }
            if received < options.events {
                throw ToolFailure("stopped after \(options.duration) s with \(received) of \(options.events) events received")
            }
        }
    }
}

private nonisolated func runDemo(_ options: Demo, logger: Logger) async throws -> Int {
    let topic = "workflow-events"
    let cluster = try MockKafkaCluster(brokers: 1)
    defer { cluster.shutdown() }
    try cluster.createTopic(topic, partitions: 3)
    writeLine("Embedded Kafka cluster at \(cluster.bootstrapServers); topic \(topic) with 3 partitions.")
    writeLine("Producing \(options.events) events at \(options.rate)/s; group 'demo' consumes them (joining takes a few seconds).")

    let producer = try WorkflowEventProducer(bootstrapServers: cluster.bootstrapServers, logger: logger)
    let configuration = WorkflowEventConsumer.Configuration(bootstrapServers: cluster.bootstrapServers, groupID: "demo")
    let total = options.events
    let pause = Duration.milliseconds(Int64(1000 / options.rate))

    let counter = ReceivedCounter()
    try await withThrowingTaskGroup(of: Bool.self) { group in
        group.addTask {
            var generator = SampleEvents.Generator()
            for sequence in 0..<total {
                _ = try await producer.send(generator.next(sequence: sequence), to: topic)
                try await Task.sleep(for: pause)
            }
            return false
        }
        group.addTask {
            try await withWorkflowEventConsumer(configuration: configuration, logger: logger) { consumer in
                for try await message in consumer.messages(topics: [topic]) {
                    writeLine("p\(message.partition)@\(message.offset)  \(textLine(for: message.event))")
                    if counter.increment() == total { break }
                }
                return true
            }
        }
        group.addTask {
            try await Task.sleep(for: .milliseconds(Int64(options.duration * 1000)))
            return true
        }
        // Ends when the consumer has every event or the duration has passed, not when the
        // producer is done.
        while let finished = try await group.next(), !finished {}
        group.cancelAll()
    }
    let received = counter.value
    await producer.close()
    if received == total {
        writeLine("Received all \(total) events, in order per partition; the group committed its offsets and was left.")
    }
    return received
}

private final class ReceivedCounter: Sendable {
    private let count = Atomic<Int>(0)
    func increment() -> Int { count.add(1, ordering: .relaxed).newValue }
    var value: Int { count.load(ordering: .relaxed) }
}
