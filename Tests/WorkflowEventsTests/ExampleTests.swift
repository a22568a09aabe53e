import Foundation
import TestSupport
import Testing

/// Each program under Examples/, run as a subprocess against its own embedded cluster, one
/// at a time: eleven processes with a cluster each at once would starve the suite's
/// timing-bound tests on two cores.
@Suite("Examples", .serialized)
struct ExampleTests {
    struct Example: Sendable, CustomTestStringConvertible {
        var name: String
        var expectedLines: [String]
        var testDescription: String { name }
    }

    static let examples = [
        Example(name: "Quickstart", expectedLines: ["Handled 30 events."]),
        Example(
            name: "ScopedConsumer",
            expectedLines: ["The scope read 30 events; now it throws.", "Consumer closed after the scope: true"]),
        Example(name: "ManualPolling", expectedLines: ["Polled 30 events, committed, closed."]),
        Example(name: "ManualCommit", expectedLines: ["Processed 30 events and committed them."]),
        Example(name: "SeekAndPosition", expectedLines: ["Current position: 0", "After seek: position 2", "Position now: 3"]),
        Example(
            name: "MultipleTopics",
            expectedLines: [
                "Read 10 events from workflow-events", "Read 10 events from workflow-alerts",
                "Read 10 events from workflow-metrics",
            ]),
        Example(name: "BatchProcessing", expectedLines: []),
        Example(name: "ConsumerGroup", expectedLines: []),
        Example(name: "OrderedParallel", expectedLines: ["all 400 events handled"]),
        Example(name: "RebalanceHandlers", expectedLines: []),
        Example(
            name: "Replay",
            expectedLines: [
                "Assigned: [workflow-events[0]]", "After seekToBeginning: position 0", "Unsubscribed: 0 partitions",
            ]),
    ]

    @Test("each example runs to its end against an embedded cluster and prints what it shows", arguments: examples)
    func runs(_ example: Example) async throws {
        let output = try await ChildProcess(example.name, []).wait(timeout: .seconds(150))
        #expect(output.status == 0, "stderr: \(output.stderr)")
        let lines = output.stdoutLines.map(String.init)
        #expect(lines.first?.hasPrefix("[\(example.name)] embedded cluster at 127.0.0.1:") == true)
        for expected in example.expectedLines {
            #expect(lines.contains(expected), "missing line '\(expected)' in:\n\(output.stdout)")
        }
        switch example.name {
        case "ManualCommit":
            // The committed next-offsets of the three partitions add up to the 30 events.
            let committed = lines.compactMap { line in
                line.hasPrefix("Committed ") ? Int(line.split(separator: " ").last!) ?? 0 : nil
            }
            #expect(committed.count == 3)
            #expect(committed.reduce(0, +) == 30)
        case "SeekAndPosition":
            #expect(lines.contains { $0.hasPrefix("Next event of workflow-events[0] is at offset 2: ") })
        case "RebalanceHandlers":
            // The handler ran before the hand-over, and said whether its commit landed.
            #expect(lines.contains { $0.hasPrefix("revoked [") && ($0.contains("committed") || $0.contains("refused")) })
            #expect(lines.contains { $0.hasPrefix("the second member owns [workflow-events[") })
        case "Replay":
            let end = lines.first { $0.hasPrefix("After seekToEnd: position ") }
            #expect(end != nil && end != "After seekToEnd: position 0")
        case "BatchProcessing":
            let sizes = lines.compactMap { line in
                line.hasPrefix("Batch of ") ? Int(line.split(separator: " ")[2]) : nil
            }
            #expect(sizes.reduce(0, +) == 350)
            #expect(sizes.allSatisfy { $0 <= 100 }, "a batch held more than maxCount: \(sizes)")
            #expect(lines.last == "Processed 350 events in \(sizes.count) batches of at most 100.")
        case "ConsumerGroup":
            let members = lines.filter { $0.hasPrefix("member ") }
            #expect(members.count == 3)
            let owned = members.flatMap { line -> [Int] in
                let list = line.split(separator: "[")[1].split(separator: "]")[0]
                return list.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
            }
            #expect(!owned.isEmpty && owned.allSatisfy { (0..<6).contains($0) }, "\(members)")
            let read = lines.last.flatMap { Int($0.split(separator: " ")[3]) } ?? 0
            #expect(read >= 60, "\(output.stdout)")
        case "OrderedParallel":
            let workflows = lines.filter { $0.contains(" events, in order: ") }
            #expect(!workflows.isEmpty)
            #expect(workflows.allSatisfy { $0.hasSuffix("in order: true") }, "\(workflows)")
            #expect(lines.last?.hasPrefix("Handled 400 events of \(workflows.count) workflows in ") == true)
        default:
            break
        }
    }

    @Test("ServiceGroup: SIGTERM shuts the service down gracefully; the metrics show what it did")
    func serviceGroup() async throws {
        let example = try ChildProcess("ServiceGroup", [])
        defer { if example.isRunning { example.signal(SIGKILL) } }
        try await waitUntil("all 30 sample events handled", timeout: .seconds(60)) { example.stdout.contains("handled 30: ") }
        example.signal(SIGTERM)
        let output = try await example.wait(timeout: .seconds(30))
        #expect(output.status == 0, "stderr: \(output.stderr)")
        #expect(output.stdout.contains("stopped: consumer closed true"))
        #expect(output.stdout.contains("workflow_events_consumer_events_total{group=\"notifier\"} 30"))
        #expect(output.stdout.contains("workflow_events_consumer_handler_duration_count{group=\"notifier\"} 30"))
        #expect(output.stdout.contains("workflow_events_consumer_rebalances_total{group=\"notifier\"}"))
    }

    @Test("GracefulShutdown: SIGTERM ends the loop, the processed events are committed and the group is left")
    func gracefulShutdown() async throws {
        let example = try ChildProcess("GracefulShutdown", [])
        defer { if example.isRunning { example.signal(SIGKILL) } }
        try await waitUntil("all 30 sample events processed", timeout: .seconds(60)) {
            example.stdout.contains("processed 30: ")
        }
        example.signal(SIGTERM)
        let output = try await example.wait(timeout: .seconds(30))
        #expect(output.status == 0, "stderr: \(output.stderr)")
        #expect(output.stdout.contains("received SIGTERM: stopping"))
        #expect(output.stdout.contains("stopped after 30 events; offsets committed and the group left"))
        #expect(output.stdout.contains("group 'graceful' has committed 30 events; lag 0"))
    }
}
