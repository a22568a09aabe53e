import ArgumentParser
import Foundation
import Logging
import Synchronization
import WorkflowEvents

struct Consume: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the events of one or more topics.",
        discussion: """
            Ends after --idle-timeout without a new event, after --max-events printed events, on \
            Ctrl-C or SIGTERM (committing and leaving the group), or with status 1 on a Kafka error. \
            Events that break the contract are logged to stderr and skipped.
            """
    )

    enum Output: String, ExpressibleByArgument, CaseIterable {
        case text, jsonl
    }

    enum OffsetReset: String, ExpressibleByArgument, CaseIterable {
        case earliest, latest
    }

    @OptionGroup var cluster: ClusterOptions

    @Option(name: .customLong("topic"), help: "A topic to read; repeat for several.")
    var topics: [String] = []

    @Option(help: "The consumer group; without one every partition is read and nothing is committed.")
    var group: String?

    @Option(help: "Where to start a partition without a committed offset: earliest or latest.")
    var offsetReset: OffsetReset = .earliest

    @Option(help: "Stop after this many seconds without a new event (default: never).")
    var idleTimeout: Double?

    @Option(help: "Stop after printing this many events.")
    var maxEvents: Int?

    @Option(help: "text: one readable line per event; jsonl: one event per line in the contract form.")
    var output: Output = .text

    @Option(name: .customLong("type"), help: "Print only events of this type (e.g. workflow.failed); repeat for several.")
    var types: [String] = []

    @Option(help: "Print only the events of this workflow ID.")
    var workflow: String?

    @Option(
        help: ArgumentHelp(
            "Start each partition at its first event written at or after this RFC 3339 time (e.g. 2026-12-01T09:00:00Z), instead of the committed offset.",
            valueName: "time"))
    var from: String?

    /// `--from` as a date.
    static func parseTime(_ text: String) -> Date? {
        let withFraction = Date.ISO8601FormatStyle(includingFractionalSeconds: true)
        return (try? Date(text, strategy: withFraction)) ?? (try? Date(text, strategy: .iso8601))
    }

    func validate() throws {
        if topics.isEmpty { throw ValidationError("give at least one --topic") }
        if let idleTimeout, !(idleTimeout > 0) { throw ValidationError("--idle-timeout must be a positive number of seconds") }
        if let maxEvents, maxEvents < 1 { throw ValidationError("--max-events must be at least 1") }
        if let from, Self.parseTime(from) == nil {
            throw ValidationError("--from \(from) is not an RFC 3339 time with a zone, such as 2026-12-01T09:00:00Z")
        }
    }

    func run() async throws {
        let properties = try cluster.clientProperties()
        let logger = cluster.logging.bootstrap(label: "workflow-events.consume", redacting: properties)
        try await reportingFailures("consume", properties: properties) {
            let printed = try await cancellingOnInterrupt { [self] in try await consume(logger: logger, connection: cluster.connection(properties)) }
            printError("consumed \(printed) event\(printed == 1 ? "" : "s")")
        }
    }

    @Sendable nonisolated func consume(logger: Logger, connection: ClusterOptions.Connection) async throws -> Int {
        let configuration = WorkflowEventConsumer.Configuration(
            bootstrapServers: connection.bootstrapServers, groupID: group, autoOffsetReset: offsetReset == .latest ? .latest : .earliest,
            connectionTimeout: cluster.connectionTimeout, clientID: "workflow-events-cli", properties: connection.properties)
        let wantedTypes = Set(types.map(EventType.init(rawValue:)))
        let idle = idleTimeout.map { Duration.milliseconds(Int64($0 * 1000)) }
        let output = self.output
        let maxEvents = self.maxEvents
        let workflow = self.workflow
        let start = from.flatMap(Self.parseTime)
        return try await withWorkflowEventConsumer(configuration: configuration, logger: logger) { consumer in
            if let start { try await Self.start(consumer, at: start, topics: topics, grouped: group != nil) }
            var printed = 0
            for try await event in consumer.events(topics: topics, idleTimeout: idle) {
                if !wantedTypes.isEmpty, !wantedTypes.contains(event.eventType) { continue }
                if let workflow, event.workflowID != workflow { continue }
                switch output {
                case .text: writeLine(textLine(for: event))
                case .jsonl: writeLine(try event.jsonString())
                }
                printed += 1
                if let maxEvents, printed >= maxEvents {
                    // The event in hand is processed: commit it before leaving the loop.
                    if group != nil { try await consumer.commit() }
                    break
                }
            }
            return printed
        }
    }
}

extension Consume {
    /// Makes each partition start at `time`: in a group, the first time it is assigned to
    /// this member (a partition that comes back later continues from its commit); without a
    /// group, every partition at once.
    static func start(_ consumer: WorkflowEventConsumer, at time: Date, topics: [String], grouped: Bool) async throws {
        guard grouped else {
            try await consumer.subscribe(topics)
            try await consumer.seek(Array(await consumer.assignment).sorted(), to: time)
            return
        }
        let started = Mutex<Set<TopicPartition>>([])
        consumer.onPartitionsAssigned { assigned in
            let fresh = started.withLock { started in assigned.partitions.filter { started.insert($0).inserted } }
            guard !fresh.isEmpty else { return }
            for (partition, offset) in try await consumer.offsets(for: time, in: fresh) {
                try assigned.start(partition, at: offset)
            }
        }
    }
}

/// Writes one line to stdout at once, so that a reader of a pipe sees each event as it comes.
func writeLine(_ line: String) {
    var bytes = Array(line.utf8)
    bytes.append(UInt8(ascii: "\n"))
    FileHandle.standardOutput.write(Data(bytes))
}
