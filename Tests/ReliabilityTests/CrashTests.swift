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

/// The lines appended to a file since the last call, read from where the last call stopped:
/// a wait that checks every 20 ms for a child's progress costs the new lines only, not the
/// whole file (which would hold one of the cooperative pool's two threads).
final class AppendedLines {
    private let url: URL
    private var offset: UInt64 = 0
    private var partial = ""

    init(_ url: URL) { self.url = url }

    func next() -> [Substring] {
        guard let handle = try? FileHandle(forReadingFrom: url) else { return [] }
        defer { try? handle.close() }
        guard (try? handle.seek(toOffset: offset)) != nil, let data = try? handle.readToEnd(), !data.isEmpty else { return [] }
        offset += UInt64(data.count)
        let text = partial + String(decoding: data, as: UTF8.self)
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        partial = String(lines.removeLast())
        return lines.filter { !$0.isEmpty }
    }
}

/// The times (CLOCK_MONOTONIC) at which the children killed themselves.
func readKills(_ url: URL) -> [UInt64] {
    let text = (try? String(contentsOf: url, encoding: .utf8)) ?? ""
    return text.split(separator: "\n").compactMap { line in
        line.hasPrefix("KILL ") ? UInt64(line.dropFirst(5)) : nil
    }
}

/// Runs a child that kills itself after `crashAfter` events and checks that it did.
func runUntilCrash(_ arguments: [String], crashAfter: Int, output: URL, progress: () -> String) async throws {
    let kills = readKills(output).count
    let child = try ChildProcess("ReliabilityConsumer", arguments + ["--crash-after", "\(crashAfter)"])
    let ended: ProcessOutput
    do {
        ended = try await child.wait(timeout: .seconds(120))
    } catch {
        throw TimedOut(description: "a run that was to crash after \(crashAfter) events: \(error); \(progress())")
    }
    if ended.status != SIGKILL || readKills(output).count != kills + 1 {
        throw TimedOut(
            description:
                "a run that was to crash after \(crashAfter) events ended with status \(ended.status) instead; \(progress()); stdout: \(ended.stdout.suffix(1000)); stderr: \(ended.stderr.suffix(3000))"
        )
    }
}

/// Runs a child until `done` says every event was handled, then ends it with SIGTERM (a
/// clean close) and expects status 0.
func runToEnd(_ arguments: [String], timeout: Duration, progress: () -> String, done: () -> Bool) async throws {
    let child = try ChildProcess("ReliabilityConsumer", arguments)
    do {
        try await child.waitUntil("every event handled", timeout: timeout, done)
    } catch {
        throw TimedOut(description: "the last run: \(error); \(progress())")
    }
    child.signal(SIGTERM)
    let finished = try await child.wait(timeout: .seconds(30))
    #expect(finished.status == 0, "the last run, ended with SIGTERM: stderr: \(finished.stderr.suffix(2000))")
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
        let reports = try await produce(events, to: topic, on: cluster)
        let place = Dictionary(uniqueKeysWithValues: zip(events.map(\.eventID), reports))
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("crash-\(UUID().uuidString).log")
        defer { try? FileManager.default.removeItem(at: output) }
        let autoCommit = Duration.seconds(1)
        let arguments = [
            "--bootstrap-servers", cluster.bootstrapServers, "--topic", topic, "--group", "crashes", "--output", output.path,
            "--process-us", "100", "--auto-commit-ms", "1000", "--idle-timeout", "600",
            // A killed member is noticed after the session timeout: keep it short.
            "--property", "session.timeout.ms=3000", "--property", "heartbeat.interval.ms=300",
        ]
        let all = Set(events.map(\.eventID))
        func progress() -> String {
            let lines = (try? readProcessed(output)) ?? []
            let seen = Set(lines.map(\.id))
            let unseen = all.subtracting(seen)
            var text = "\(lines.count) events processed in all, \(seen.count) distinct, \(unseen.count) never processed"
            // Where the never-processed events are, beside what was processed there.
            var missing: [Int32: [Int64]] = [:]
            for id in unseen { missing[place[id]!.partition, default: []].append(place[id]!.offset) }
            for (partition, offsets) in missing.sorted(by: { $0.key < $1.key }).prefix(6) {
                let processed = lines.filter { $0.partition == partition }.map(\.offset)
                text +=
                    "; partition \(partition): never \(offsetRuns(offsets.sorted())), processed \(offsetRuns(Array(Set(processed)).sorted()))"
            }
            return text
        }
        // Five crashes after 2,000 to 6,000 events each: at most 30,000 of the 50,000 are
        // done before the last run, so every run has work, however fast the machine is.
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<5 {
            try await runUntilCrash(
                arguments, crashAfter: Int.random(in: 2_000...6_000, using: &generator), output: output, progress: progress)
        }
        let appended = AppendedLines(output)
        var processed = Set<UUID>()
        try await runToEnd(arguments, timeout: .seconds(120), progress: progress) {
            for line in appended.next() { if let line = ProcessedLine(line) { processed.insert(line.id) } }
            return processed.count == all.count
        }

        // The mock kept every event (each keeps 5 MiB per partition; these are about 0.6 MB
        // each): none was dropped from the log before a member could read it.
        let watermarks = try await withWorkflowEventConsumer(configuration: groupConfiguration(cluster, group: "crashes")) {
            try await $0.lag(topics: [topic])
        }
        let trimmed = watermarks.filter { $0.lowWatermark > 0 }.map { "\($0.partition) from \($0.lowWatermark)" }
        #expect(trimmed.isEmpty, "the mock dropped the start of \(trimmed)")

        let lines = try readProcessed(output)
        let kills = readKills(output)
        var first: [UUID: UInt64] = [:]
        var duplicates: [ProcessedLine] = []
        for line in lines {
            if first[line.id] == nil { first[line.id] = line.nanoseconds } else { duplicates.append(line) }
        }
        let lost = all.subtracting(first.keys).count
        #expect(lost == 0, "\(lost) events never processed")
        #expect(kills.count == 5)
        // A duplicate is an event processed before a kill whose offset had not been
        // committed yet: its first processing lies within one auto-commit interval (plus
        // the commit's own round trip) before that kill.
        let allowance = UInt64(autoCommit.components.seconds) * 1_000_000_000 + 500_000_000
        var outside = 0
        for duplicate in duplicates {
            let processed = first[duplicate.id]!
            guard let kill = kills.first(where: { $0 >= processed }) else {
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
            "--ordered", "16", "--process-us", "4000", "--auto-commit-ms", "500", "--idle-timeout", "600",
            "--property", "session.timeout.ms=3000", "--property", "heartbeat.interval.ms=300",
        ]
        func lines() -> [Substring] {
            ((try? String(contentsOf: output, encoding: .utf8)) ?? "").split(separator: "\n")
        }
        let all = Set(events.map(\.eventID))
        func finishedIDs() -> [UUID: Int] {
            var finished: [UUID: Int] = [:]
            for line in lines() where line.hasPrefix("F ") {
                if let id = UUID(uuidString: String(line.dropFirst(2))) { finished[id, default: 0] += 1 }
            }
            return finished
        }
        var runs: [String] = []
        func progress() -> String {
            let finished = finishedIDs()
            return
                "runs before: [\(runs.joined(separator: "; "))]; \(finished.values.reduce(0, +)) handlers finished in all, \(finished.count) distinct events, \(all.subtracting(finished.keys).count) never finished"
        }
        var checkedPartitions = 0
        var violations = 0
        var generator = SystemRandomNumberGenerator()
        // Three crashes after 1,500 to 3,500 finished events each: at most 10,500 of the
        // 15,360 are done before the last run, so every run has work.
        for _ in 0..<3 {
            let before = lines().count
            let crashAfter = Int.random(in: 1_500...3_500, using: &generator)
            try await runUntilCrash(arguments, crashAfter: crashAfter, output: output, progress: progress)
            // The events this run started and did not finish, by partition.
            var started: Set<UUID> = []
            var done: Set<UUID> = []
            for line in lines()[before...] {
                let fields = line.split(separator: " ")
                guard fields.count == 2, let id = UUID(uuidString: String(fields[1])) else { continue }
                if fields[0] == "S" { started.insert(id) } else if fields[0] == "F" { done.insert(id) }
            }
            runs.append("crashed after \(done.count) finished, \(started.subtracting(done).count) started and not finished")
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
        let appended = AppendedLines(output)
        var finishedSoFar = Set<UUID>()
        try await runToEnd(arguments, timeout: .seconds(120), progress: progress) {
            for line in appended.next() where line.hasPrefix("F ") {
                if let id = UUID(uuidString: String(line.dropFirst(2))) { finishedSoFar.insert(id) }
            }
            return finishedSoFar.count == all.count
        }

        let finished = finishedIDs()
        let lost = all.subtracting(finished.keys).count
        #expect(lost == 0)
        #expect(readKills(output).count == 3)
        #expect(checkedPartitions > 0)
        figure(
            "ordered crash",
            [
                "events": "\(events.count)", "kills": "3", "lost": "\(lost)",
                "duplicates": "\(finished.values.reduce(0, +) - finished.count)",
                "commits checked against unfinished events": "\(checkedPartitions)", "commits past an unfinished event": "\(violations)",
            ])
    }
}
