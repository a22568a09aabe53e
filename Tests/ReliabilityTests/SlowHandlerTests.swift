import Foundation
import TestSupport
import Testing
import WorkflowEvents
import WorkflowEventsTesting

@Suite("Reliability: slow handler")
struct SlowHandlerTests {
    /// librdkafka's prefetch is bounded by `queued.max.messages.kbytes` (the consumer's queue)
    /// plus one fetch response in flight (`fetch.max.bytes`); the consumer adds one fetch
    /// batch (500 messages). The child runs with both limits at 8 MB, so its messages take
    /// at most about 16.5 MB over the process's own ~40 MB.
    static let prefetchKilobytes = 8 * 1024
    static let memoryBoundKilobytes = 80 * 1024

    @Test(
        "200,000 events waiting and a slow handler: memory stays bounded, and an 8 s pause past a 6 s max.poll.interval.ms keeps the member in the group"
    )
    func slowHandlerBoundedMemory() async throws {
        let cluster = try MockKafkaCluster()
        defer { cluster.shutdown() }
        let topic = "backlog"
        try cluster.createTopic(topic, partitions: 128)
        let events = SampleEvents.make(count: 200_000, workflows: 256)
        let reports = try await produce(events, to: topic, on: cluster)
        #expect(reports.count == events.count)
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("slow-\(UUID().uuidString).log")
        defer { try? FileManager.default.removeItem(at: output) }
        let child = try ChildProcess(
            "ReliabilityConsumer",
            [
                "--bootstrap-servers", cluster.bootstrapServers, "--topic", topic, "--group", "slow", "--output", output.path,
                "--process-us", "1000", "--slow-every", "1500", "--slow-ms", "8000",
                "--max-poll-interval-ms", "6000",
                "--property", "session.timeout.ms=6000", "--property", "heartbeat.interval.ms=500",
                "--property", "queued.max.messages.kbytes=\(Self.prefetchKilobytes)",
                "--property", "fetch.max.bytes=\(Self.prefetchKilobytes * 1024)",
            ])
        defer { if child.isRunning { child.signal(SIGKILL) } }
        // Past a slow event (longer than max.poll.interval.ms), then stop it.
        try await waitUntil("1,600 events processed", timeout: .seconds(60)) {
            ((try? readProcessed(output).count) ?? 0) >= 1_600
        }
        child.signal(SIGTERM)
        let finished = try await child.wait(timeout: .seconds(20))
        #expect(finished.status == 0, "stderr: \(finished.stderr.suffix(2000))")
        let summary = finished.stdout.split(separator: " ").reduce(into: [String: Int]()) { fields, pair in
            let parts = pair.split(separator: "=")
            if parts.count == 2 { fields[String(parts[0])] = Int(parts[1].trimmingCharacters(in: .whitespacesAndNewlines)) }
        }
        let peak = try #require(summary["peak_rss_kb"], "no summary in \(finished.stdout)")
        let rebalances = try #require(summary["rebalances"])
        let processed = try readProcessed(output)
        // librdkafka never found the application stalled (it logs MAXPOLL and leaves the
        // group when it does); a loaded machine may still see a rebalance for other reasons.
        #expect(
            !finished.stderr.contains("MAXPOLL") && !finished.stderr.contains("MAX_POLL"),
            "max.poll.interval.ms was exceeded: \(finished.stderr.suffix(1500))")
        #expect(!finished.stderr.contains("maximum poll interval"), "max.poll.interval.ms was exceeded")
        #expect(rebalances >= 1)
        #expect(peak <= Self.memoryBoundKilobytes, "peak resident memory \(peak) KiB")
        // In order per partition, no repeats.
        var last: [Int32: Int64] = [:]
        for line in processed {
            #expect(line.offset > last[line.partition, default: -1])
            last[line.partition] = line.offset
        }
        figure(
            "slow handler",
            [
                "events waiting": "\(events.count)", "processed": "\(processed.count)",
                "peak memory": "\(peak / 1024) MiB (bound \(Self.memoryBoundKilobytes / 1024) MiB)",
                "pauses longer than max.poll.interval.ms": "1 (8 s, max 6 s)", "rebalances": "\(rebalances)",
            ])
    }
}
