import Foundation
import TestSupport
import Testing
import WorkflowEvents
import WorkflowEventsTesting

/// The `workflow-events` executable, driven as a subprocess against embedded clusters.
@Suite("workflow-events tool")
struct ToolTests {
    @Test("consume --output jsonl prints exactly the produced events in the contract form, in order per partition, and nothing else")
    func consumeJSONLines() async throws {
        let fixture = try await makeFixture(partitions: 3, events: 300)
        defer { fixture.cluster.shutdown() }
        let output = try await runTool([
            "consume", "--bootstrap-servers", fixture.cluster.bootstrapServers, "--topic", fixture.topic,
            "--output", "jsonl", "--max-events", "300",
        ])
        #expect(output.status == 0, "stderr: \(output.stderr)")
        let lines = output.stdoutLines
        #expect(lines.count == 300)
        let produced = Dictionary(uniqueKeysWithValues: zip(fixture.events.map(\.eventID), zip(fixture.events, fixture.reports)))
        var lastOffset: [Int32: Int64] = [:]
        var seen = Set<UUID>()
        for (index, line) in lines.enumerated() {
            let event = try WorkflowEvent(validatingJSON: String(line))
            let (original, report) = try #require(produced[event.eventID], "line \(index + 1) is not a produced event")
            #expect(event == original)
            #expect(String(line) == (try original.jsonString()), "line \(index + 1) is not in the contract form")
            #expect(seen.insert(event.eventID).inserted, "line \(index + 1) repeats an event")
            #expect(report.offset > lastOffset[report.partition, default: -1], "partition \(report.partition) out of order at line \(index + 1)")
            lastOffset[report.partition] = report.offset
        }
        #expect(seen.count == 300)
        #expect(output.stderr.contains("consumed 300 events"))
    }

    @Test("consume with a group, type filters and an idle timeout; lag then shows the group caught up, and new events as lag")
    func consumeWithGroupThenLag() async throws {
        let fixture = try await makeFixture(partitions: 3, events: 240)
        defer { fixture.cluster.shutdown() }
        let servers = fixture.cluster.bootstrapServers
        let group = "tool-lag"
        let wanted: Set<EventType> = [.workflowFailed, .workflowCompleted]
        let output = try await runTool([
            "consume", "--bootstrap-servers", servers, "--topic", fixture.topic, "--group", group,
            "--idle-timeout", "1", "--type", "workflow.failed", "--type", "workflow.completed",
        ])
        #expect(output.status == 0, "stderr: \(output.stderr)")
        let expected = fixture.events.filter { wanted.contains($0.eventType) }
        #expect(!expected.isEmpty)
        #expect(output.stdoutLines.count == expected.count)
        for line in output.stdoutLines {
            #expect(line.contains("workflow.failed") || line.contains("workflow.completed"), "unexpected line: \(line)")
        }
        for event in expected {
            #expect(output.stdout.contains("  \(event.workflowID)  \(event.workflowRunID ?? "-")  "))
        }

        // Every event was processed (the filtered-out ones too): the group has no lag.
        var ends: [Int32: Int64] = [:]
        for report in fixture.reports { ends[report.partition] = max(ends[report.partition, default: 0], report.offset + 1) }
        let caughtUp = try await lagRows(servers: servers, group: group)
        #expect(caughtUp.total == 0)
        #expect(Set(caughtUp.rows.keys) == Set(ends.keys))
        for (partition, end) in ends {
            #expect(caughtUp.rows[partition]?.committed == end, "partition \(partition)")
            #expect(caughtUp.rows[partition]?.end == end, "partition \(partition)")
        }

        _ = try await produce(SampleEvents.make(count: 10, seed: 7), to: fixture.topic, on: fixture.cluster)
        let behind = try await lagRows(servers: servers, group: group, topic: fixture.topic)
        #expect(behind.total == 10)
        #expect(behind.rows.values.reduce(0) { $0 + $1.lag } == 10)
    }

    @Test("produce --file reports invalid lines by number and sends the valid ones in order; --sample sends generated events")
    func produceFileAndSample() async throws {
        let cluster = try MockKafkaCluster()
        defer { cluster.shutdown() }
        try cluster.createTopic("from-file", partitions: 1)
        try cluster.createTopic("sampled", partitions: 2)
        let valid = SampleEvents.make(count: 5, seed: 3)
        var lines = try valid.map { try $0.jsonString() }
        lines.insert("not json", at: 2)  // line 3
        lines.insert("", at: 4)  // line 5: blank, ignored
        lines.insert(#"{"event_id": 1}"#, at: 5)  // line 6
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("events-\(UUID().uuidString).jsonl")
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }

        let fromFile = try await runTool([
            "produce", "--bootstrap-servers", cluster.bootstrapServers, "--topic", "from-file", "--file", file.path,
        ])
        #expect(fromFile.status == 1)
        #expect(fromFile.stderr.contains("\(file.path):3: invalid workflow event"))
        #expect(fromFile.stderr.contains("\(file.path):6: invalid workflow event: field 'event_id'"))
        #expect(fromFile.stderr.contains("sent 5 events to from-file; skipped 2 invalid lines (3, 6)"))
        #expect(fromFile.stdout.isEmpty)
        let received = try await readAll(cluster, topic: "from-file", count: 5)
        #expect(received.map(\.event) == valid)

        let sampled = try await runTool([
            "produce", "--bootstrap-servers", cluster.bootstrapServers, "--topic", "sampled", "--sample", "500",
        ])
        #expect(sampled.status == 0, "stderr: \(sampled.stderr)")
        #expect(sampled.stderr.contains("sent 500 events to sampled"))
        let sampledEvents = try await readAll(cluster, topic: "sampled", count: 500)
        #expect(Set(sampledEvents.map(\.event)) == Set(SampleEvents.make(count: 500)))
    }

    @Test("broker serves an embedded cluster that the other commands reach through the environment, and stops on SIGINT")
    func brokerServesUntilInterrupted() async throws {
        let broker = try ChildProcess("workflow-events", ["broker", "--brokers", "2", "--topic", "tooling:2"])
        defer { if broker.isRunning { broker.signal(SIGKILL) } }
        try await waitUntil("the broker to print its bootstrap servers") { broker.stdout.contains("\nexport ") }
        let servers = try #require(
            broker.stdout.split(separator: "\n").first { $0.hasPrefix("bootstrap servers: ") }?
                .dropFirst("bootstrap servers: ".count))
        #expect(servers.split(separator: ",").count == 2)
        #expect(broker.stdout.contains("topic tooling: 2 partitions"))
        let environment = ["WORKFLOW_EVENTS_BOOTSTRAP_SERVERS": String(servers)]

        let produced = try await runTool(["produce", "--topic", "tooling", "--sample", "40"], environment: environment)
        #expect(produced.status == 0, "stderr: \(produced.stderr)")
        let consumed = try await runTool(
            ["consume", "--topic", "tooling", "--max-events", "40", "--output", "jsonl"], environment: environment)
        #expect(consumed.status == 0, "stderr: \(consumed.stderr)")
        let events = try consumed.stdoutLines.map { try WorkflowEvent(validatingJSON: String($0)) }
        #expect(Set(events) == Set(SampleEvents.make(count: 40)))

        broker.signal(SIGINT)
        let stopped = try await broker.wait(timeout: .seconds(15))
        #expect(stopped.status == 0)
        #expect(stopped.stderr.contains("stopping the embedded cluster"))
        #expect(broker.stdout.contains("give consumers -X session.timeout.ms=6000 to restart within seconds"))
    }

    @Test("demo produces to an embedded cluster, prints every event as the group receives it, and stops by itself")
    func demoRunsToTheEnd() async throws {
        let output = try await runTool(["demo", "--events", "12", "--rate", "100"], timeout: .seconds(90))
        #expect(output.status == 0, "stderr: \(output.stderr)")
        let eventLines = output.stdoutLines.filter { $0.hasPrefix("p") && $0.contains("@") }
        #expect(eventLines.count == 12)
        #expect(output.stdout.contains("Received all 12 events"))
    }

    @Test(
        "consume --from: a time after every event starts at the end, with and without a group; a group's commit is not moved by it; a bad time is refused"
    )
    func consumeFrom() async throws {
        let fixture = try await makeFixture(partitions: 2, events: 20)
        defer { fixture.cluster.shutdown() }
        let servers = fixture.cluster.bootstrapServers
        for group in [[], ["--group", "tool-from"]] {
            let output = try await runTool(
                ["consume", "--bootstrap-servers", servers, "--topic", fixture.topic, "--idle-timeout", "1", "--from", "2999-01-01T00:00:00Z"]
                    + group)
            #expect(output.status == 0, "stderr: \(output.stderr)")
            #expect(output.stdout.isEmpty)
            #expect(output.stderr.contains("consumed 0 events"))
        }
        // Nothing was read in the group, so nothing was committed: without --from it would
        // start at the beginning.
        let partitions = [0, 1].map { TopicPartition(topic: fixture.topic, partition: $0) }
        let committed = try await withWorkflowEventConsumer(configuration: groupConfiguration(fixture.cluster, group: "tool-from")) {
            try await $0.committed(partitions)
        }
        #expect(committed.isEmpty)

        let bad = try await runTool(["consume", "--topic", "t", "--from", "yesterday"])
        #expect(bad.status == 64)
        #expect(bad.stderr.contains("--from yesterday is not an RFC 3339 time"))
    }

    @Test("errors are one sentence on stderr and a non-zero exit, never a stack trace")
    func errorsAreOneSentence() async throws {
        let noTopic = try await runTool(["consume"])
        #expect(noTopic.status == 64)
        #expect(noTopic.stderr.contains("Error: give at least one --topic"))

        let unreachable = try await runTool([
            "consume", "--bootstrap-servers", "127.0.0.1:1", "--connect-timeout", "1", "--topic", "anything",
        ])
        #expect(unreachable.status == 1)
        #expect(unreachable.stdout.isEmpty)
        let sentences = unreachable.stderr.split(separator: "\n")
        #expect(sentences.count == 1, "stderr: \(unreachable.stderr)")
        #expect(sentences.first?.hasPrefix("workflow-events consume: ") == true)
        #expect(unreachable.stderr.contains("no bootstrap server of '127.0.0.1:1' answered within 1.0 seconds"))

        let lag = try await runTool(["lag", "--bootstrap-servers", "127.0.0.1:1", "--connect-timeout", "1", "--group", "g"])
        #expect(lag.status == 1)
        #expect(lag.stderr.hasPrefix("workflow-events lag: "))
        #expect(lag.stderr.split(separator: "\n").count == 1, "stderr: \(lag.stderr)")

        let missingFile = try await runTool(["produce", "--topic", "t", "--file", "/nonexistent/events.jsonl"])
        #expect(missingFile.status == 1)
        #expect(missingFile.stderr.contains("cannot open '/nonexistent/events.jsonl' for reading: No such file or directory"))
    }
}

/// Reads `count` events of a topic from the start, without a group.
private func readAll(_ cluster: MockKafkaCluster, topic: String, count: Int) async throws -> [WorkflowEventMessage] {
    try await withWorkflowEventConsumer(bootstrapServers: cluster.bootstrapServers) { consumer in
        try await collect(consumer.messages(topics: [topic]), count: count)
    }
}

/// The `lag` command's table, read back: per partition the committed offset, end and lag.
private func lagRows(
    servers: String, group: String, topic: String? = nil
) async throws -> (rows: [Int32: (committed: Int64?, end: Int64, lag: Int64)], total: Int64) {
    var arguments = ["lag", "--bootstrap-servers", servers, "--group", group]
    if let topic { arguments += ["--topic", topic] }
    let output = try await runTool(arguments)
    #expect(output.status == 0, "stderr: \(output.stderr)")
    let lines = output.stdoutLines.map { $0.split(separator: " ", omittingEmptySubsequences: true).map(String.init) }
    #expect(lines.first == ["TOPIC", "PARTITION", "COMMITTED", "END", "LAG"])
    var rows: [Int32: (committed: Int64?, end: Int64, lag: Int64)] = [:]
    var total: Int64 = -1
    for cells in lines.dropFirst() {
        if cells.first == "TOTAL", cells.count == 2 {
            total = Int64(cells[1]) ?? -1
        } else if cells.count == 5, let partition = Int32(cells[1]), let end = Int64(cells[3]), let lag = Int64(cells[4]) {
            rows[partition] = (Int64(cells[2]), end, lag)
        } else {
            Issue.record("unexpected lag line: \(cells)")
        }
    }
    return (rows, total)
}
