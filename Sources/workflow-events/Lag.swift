import ArgumentParser
import Logging
import WorkflowEvents

struct Lag: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a consumer group's committed offset, end offset and lag per partition.",
        discussion: """
            Without --topic, every topic on which the group has committed an offset is shown. \
            A partition without a committed offset shows '-' and counts as lagging by every \
            record the broker still holds. The group is only read, never joined.
            """
    )

    @OptionGroup var cluster: ClusterOptions

    @Option(help: "The consumer group.")
    var group: String

    @Option(name: .customLong("topic"), help: "A topic to show; repeat for several (default: the group's topics).")
    var topics: [String] = []

    func validate() throws {
        if group.isEmpty { throw ValidationError("--group is empty") }
    }

    func run() async throws {
        let properties = try cluster.clientProperties()
        let logger = cluster.logging.bootstrap(label: "workflow-events.lag", redacting: properties)
        try await reportingFailures("lag", properties: properties) {
            let rows = try await lag(logger: logger, connection: cluster.connection(properties))
            if rows.isEmpty {
                printError("group '\(group)' has committed no offsets\(topics.isEmpty ? "" : " on \(topics.joined(separator: ", "))")")
                return
            }
            for line in lagTable(rows) { writeLine(line) }
        }
    }

    nonisolated func lag(logger: Logger, connection: ClusterOptions.Connection) async throws -> [PartitionLag] {
        let configuration = WorkflowEventConsumer.Configuration(
            bootstrapServers: connection.bootstrapServers, groupID: group, enableAutoCommit: false,
            connectionTimeout: cluster.connectionTimeout, clientID: "workflow-events-cli", properties: connection.properties)
        let topics = self.topics
        return try await withWorkflowEventConsumer(configuration: configuration, logger: logger) { consumer in
            if !topics.isEmpty { return try await consumer.lag(topics: topics) }
            let all = try await consumer.topics()
            guard !all.isEmpty else { return [] }
            return try await consumer.lag(topics: all).filter { $0.committedOffset != nil }
        }
    }
}

/// The lag table: one row per partition and a total, columns aligned.
func lagTable(_ rows: [PartitionLag]) -> [String] {
    var table = [["TOPIC", "PARTITION", "COMMITTED", "END", "LAG"]]
    for row in rows {
        table.append([
            row.partition.topic, String(row.partition.partition), row.committedOffset.map(String.init) ?? "-",
            String(row.endOffset), String(row.lag),
        ])
    }
    table.append(["TOTAL", "", "", "", String(rows.reduce(0) { $0 + $1.lag })])
    let widths = (0..<5).map { column in table.map { $0[column].count }.max() ?? 0 }
    return table.map { cells in
        cells.enumerated().map { column, cell in
            let pad = String(repeating: " ", count: widths[column] - cell.count)
            return column == 0 ? cell + pad : pad + cell
        }.joined(separator: "  ")
    }
}
