import Foundation
import TestSupport
import Testing
import WorkflowEvents
import WorkflowEventsTesting

/// One processed event as the child process wrote it.
struct ProcessedLine {
    var id: UUID
    var partition: Int32
    var offset: Int64
    var nanoseconds: UInt64

    init?(_ line: Substring) {
        let fields = line.split(separator: " ")
        guard fields.count == 4, let id = UUID(uuidString: String(fields[0])), let partition = Int32(fields[1]),
            let offset = Int64(fields[2]), let nanoseconds = UInt64(fields[3])
        else { return nil }
        (self.id, self.partition, self.offset, self.nanoseconds) = (id, partition, offset, nanoseconds)
    }
}

func readProcessed(_ url: URL) throws -> [ProcessedLine] {
    let text = try String(contentsOf: url, encoding: .utf8)
    return text.split(separator: "\n").compactMap(ProcessedLine.init)
}

@Suite("Reliability: crashes", .serialized)
struct CrashTests {
    @Test(
        "a consumer killed with SIGKILL at random points and restarted loses nothing; duplicates stay within one auto-commit interval",
        arguments: BrokerImplementation.allCases)
    func crashWithoutLoss(broker: BrokerImplementation) async throws {
        let cluster = try await broker.makeCluster()
        defer { cluster.shutdown() }
        let topic = "crashes"
        try await cluster.createTopic(topic, partitions: 32)
        let events = SampleEvents.make(count: 50_000, workflows: 64)
        _ = try await produce(events, to: topic, on: cluster)
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("crash-\(UUID().uuidString).log")
        defer { try? FileManager.default.removeItem(at: output) }
        let autoCommit = Duration.seconds(1)
        let arguments = [
            "--bootstrap-servers", cluster.bootstrapServers, "--topic", topic, "--group", "crashes", "--output", output.path,
            // Idle longer than a killed member holds its partitions (see the ordered test).
            "--process-us", "100", "--auto-commit-ms", "1000", "--idle-timeout", "8",
            // A killed member is noticed after the session timeout: keep it short.
            "--property", "session.timeout.ms=3000", "--property", "heartbeat.interval.ms=300",
        ]
        var generator = SystemRandomNumberGenerator()
        var kills: [UInt64] = []
        while kills.count < 5 {
            let child = try ChildProcess("ReliabilityConsumer", arguments)
            let before = (try? readProcessed(output).count) ?? 0
            // Let it process for a random while after it has started, then kill it mid-stream.
            try await child.waitUntil("the restarted consumer processes events", timeout: .seconds(90)) {
                ((try? readProcessed(output).count) ?? 0) > before
            }
            try await Task.sleep(for: .milliseconds(Int64.random(in: 300...1_200, using: &generator)))
            guard child.process.isRunning else { break }
            child.signal(SIGKILL)
            kills.append(monotonicNanoseconds())
            _ = try await child.wait(timeout: .seconds(10))
        }
        let last = try ChildProcess("ReliabilityConsumer", arguments)
        let finished = try await last.wait(timeout: .seconds(120))
        #expect(finished.status == 0, "stderr: \(finished.stderr.suffix(2000))")

        let lines = try readProcessed(output)
        let all = Set(events.map(\.eventID))
        var first: [UUID: UInt64] = [:]
        var duplicates: [ProcessedLine] = []
        for line in lines {
            if first[line.id] == nil { first[line.id] = line.nanoseconds } else { duplicates.append(line) }
        }
        let lost = all.subtracting(first.keys).count
        #expect(lost == 0, "\(lost) events never processed")
        #expect(kills.count >= 5)
        // A duplicate is an event processed before a kill whose offset had not been
        // committed yet: its first processing lies within one auto-commit interval (plus
        // the commit's own round trip) before that kill.
        let allowance = UInt64(autoCommit.components.seconds) * 1_000_000_000 + 500_000_000
        var outside = 0
        for duplicate in duplicates {
            let processed = first[duplicate.id]!
            guard let kill = kills.first(where: { $0 > processed }) else {
                outside += 1
                continue
            }
            if kill - processed > allowance { outside += 1 }
        }
        #expect(outside == 0, "\(outside) duplicates were processed more than one auto-commit interval before their kill")
        figure(
            "crash without loss (\(broker))",
            [
                "events": "\(events.count)", "kills": "\(kills.count)", "processed": "\(lines.count)", "lost": "\(lost)",
                "duplicates": "\(duplicates.count)", "beyond one auto-commit interval": "\(outside)",
            ])
    }
}

@Suite("Reliability: ordered processing crashes", .serialized)
struct OrderedCrashTests {
    @Test("process killed with SIGKILL mid-run and restarted: nothing lost, and no commit ever passed an unfinished event")
    func orderedCrashWithoutLoss() async throws {
        let cluster = try MockKafkaCluster()
        defer { cluster.shutdown() }
        let topic = "ordered-crashes"
        try cluster.createTopic(topic, partitions: 6)
        let events = workflowEvents(workflows: 128, perWorkflow: 120)
        let reports = try await produce(events, to: topic, on: cluster)
        let place = Dictionary(uniqueKeysWithValues: zip(events.map(\.eventID), reports))
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("ordered-\(UUID().uuidString).log")
        defer { try? FileManager.default.removeItem(at: output) }
        let group = "ordered-crashes"
        let arguments = [
            "--bootstrap-servers", cluster.bootstrapServers, "--topic", topic, "--group", group, "--output", output.path,
            // Idle longer than a killed member holds its partitions (the 3 s session timeout,
            // then the mock's 2 s wait for members to rejoin): a restarted member whose own
            // partitions are done waits for those.
            "--ordered", "16", "--process-us", "4000", "--auto-commit-ms", "500", "--idle-timeout", "8",
            "--property", "session.timeout.ms=3000", "--property", "heartbeat.interval.ms=300",
        ]
        func lines() -> [Substring] {
            ((try? String(contentsOf: output, encoding: .utf8)) ?? "").split(separator: "\n")
        }
        var kills = 0
        var checkedPartitions = 0
        var violations = 0
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<3 {
            let before = lines().count
            let child = try ChildProcess("ReliabilityConsumer", arguments)
            try await child.waitUntil("the restarted consumer handles events", timeout: .seconds(90)) { lines().count > before + 100 }
            try await Task.sleep(for: .milliseconds(Int64.random(in: 200...800, using: &generator)))
            guard child.process.isRunning else { break }
            child.signal(SIGKILL)
            _ = try await child.wait(timeout: .seconds(10))
            kills += 1
            // The events this run started and did not finish, by partition.
            var started: Set<UUID> = []
            var done: Set<UUID> = []
            for line in lines()[before...] {
                let fields = line.split(separator: " ")
                guard fields.count == 2, let id = UUID(uuidString: String(fields[1])) else { continue }
                if fields[0] == "S" { started.insert(id) } else { done.insert(id) }
            }
            var firstUnfinished: [TopicPartition: Int64] = [:]
            for id in started.subtracting(done) {
                let report = place[id]!
                let partition = TopicPartition(topic: report.topic, partition: report.partition)
                firstUnfinished[partition] = min(firstUnfinished[partition] ?? .max, report.offset)
            }
            let committed = try await withWorkflowEventConsumer(configuration: .init(bootstrapServers: cluster.bootstrapServers, groupID: group)) {
                try await $0.committed(Array(firstUnfinished.keys))
            }
            for (partition, offset) in firstUnfinished {
                checkedPartitions += 1
                if let commit = committed[partition], commit > offset {
                    violations += 1
                    Issue.record("\(partition): committed \(commit) past the unfinished offset \(offset)")
                }
            }
        }
        let last = try ChildProcess("ReliabilityConsumer", arguments)
        let before = lines().count
        let finished: ProcessOutput
        do {
            finished = try await last.wait(timeout: .seconds(120))
        } catch {
            throw TimedOut(description: "\(error); the last run handled \((lines().count - before) / 2) events")
        }
        #expect(finished.status == 0, "stderr: \(finished.stderr.suffix(2000))")

        var finishedIDs: [UUID: Int] = [:]
        for line in lines() where line.hasPrefix("F ") {
            if let id = UUID(uuidString: String(line.dropFirst(2))) { finishedIDs[id, default: 0] += 1 }
        }
        let lost = Set(events.map(\.eventID)).subtracting(finishedIDs.keys).count
        #expect(lost == 0)
        #expect(kills >= 3)
        #expect(checkedPartitions > 0)
        figure(
            "ordered crash",
            [
                "events": "\(events.count)", "kills": "\(kills)", "lost": "\(lost)",
                "duplicates": "\(finishedIDs.values.reduce(0, +) - finishedIDs.count)",
                "commits checked against unfinished events": "\(checkedPartitions)", "commits past an unfinished event": "\(violations)",
            ])
    }
}
