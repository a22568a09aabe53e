// Helpers shared by the test targets: clusters with events, bounded waits, collection.
import Foundation
public import InMemoryLogging
public import Logging
import Synchronization
public import WorkflowEvents
public import WorkflowEventsTesting

/// A cluster with one topic, and the events already written to it.
public struct Fixture: Sendable {
    public let cluster: MockKafkaCluster
    public let topic: String
    public let events: [WorkflowEvent]
    public let reports: [DeliveryReport]
}

public func makeFixture(partitions: Int = 3, events count: Int = 0, brokers: Int = 1) async throws -> Fixture {
    let cluster = try MockKafkaCluster(brokers: brokers)
    let topic = "workflow-events"
    try cluster.createTopic(topic, partitions: partitions)
    let events = SampleEvents.make(count: count)
    var reports: [DeliveryReport] = []
    if count > 0 {
        reports = try await produce(events, to: topic, on: cluster)
    }
    return Fixture(cluster: cluster, topic: topic, events: events, reports: reports)
}

public func produce(_ events: [WorkflowEvent], to topic: String, on cluster: any TestCluster) async throws -> [DeliveryReport] {
    let producer = try WorkflowEventProducer(bootstrapServers: cluster.bootstrapServers)
    do {
        let reports = try await producer.send(events, to: topic)
        await producer.close()
        return reports
    } catch {
        await producer.close()
        throw error
    }
}

public func produceRecords(_ values: [[UInt8]?], to topic: String, partition: Int32 = 0, on cluster: any TestCluster) async throws {
    let producer = try WorkflowEventProducer(
        configuration: .init(bootstrapServers: cluster.bootstrapServers, properties: ["message.max.bytes": "2000000"]))
    for value in values {
        _ = try await producer.sendRecord(value: value, key: Array("k".utf8), to: topic, partition: partition)
    }
    await producer.close()
}

/// Runs seconds of CPU work on a thread of its own, not on Swift's cooperative pool: the pool
/// has one thread per core (two here), and a test that computes on it starves every other
/// test's tasks, which then look hung.
public func onOwnThread<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        let thread = Thread { continuation.resume(returning: work()) }
        thread.stackSize = 8 << 20
        thread.start()
    }
}

/// Settings that make group hand-over fast on the mock cluster.
/// `WORKFLOW_EVENTS_TEST_DEBUG=cgrp,fetch` (librdkafka's debug contexts) makes the members log them.
public func groupConfiguration(_ cluster: any TestCluster, group: String, autoCommit: Bool = true) -> WorkflowEventConsumer.Configuration {
    var properties = ["session.timeout.ms": "6000", "heartbeat.interval.ms": "500"]
    if let debug = ProcessInfo.processInfo.environment["WORKFLOW_EVENTS_TEST_DEBUG"] { properties["debug"] = debug }
    return WorkflowEventConsumer.Configuration(
        bootstrapServers: cluster.bootstrapServers, groupID: group, enableAutoCommit: autoCommit, properties: properties)
}

/// A logger whose entries the test can read.
public func recordingLogger() -> (Logger, InMemoryLogHandler) {
    var handler = InMemoryLogHandler()
    handler.logLevel = .debug
    let logger = Logger(label: "test", factory: { _ in handler })
    return (logger, handler)
}

/// The last `count` entries of a recording logger, one a line, with their metadata.
public func lastLines(_ logs: InMemoryLogHandler, _ count: Int) -> String {
    logs.entries.suffix(count).map { entry in
        let metadata = entry.metadata.isEmpty ? "" : " \(entry.metadata.map { "\($0.key)=\($0.value)" }.sorted().joined(separator: " "))"
        return "\(entry.level) \(entry.message)\(metadata)"
    }.joined(separator: "\n")
}

public struct TimedOut: Error, CustomStringConvertible {
    public var description: String
    public init(description: String) { self.description = description }
}

/// Waits until `condition` holds, checking every 20 ms, at most `timeout`. On a timeout the
/// error says what was awaited and, from `saw`, what the test saw instead.
public func waitUntil(
    _ what: String, timeout: Duration = .seconds(20), saw: (() async -> String)? = nil,
    _ condition: () async throws -> Bool
) async throws {
    let deadline = ContinuousClock.now.advanced(by: timeout)
    while try await !condition() {
        if ContinuousClock.now >= deadline {
            let seen = await saw?()
            throw TimedOut(description: "timed out after \(timeout) waiting for \(what)" + (seen.map { "; saw: \($0)" } ?? ""))
        }
        try await Task.sleep(for: .milliseconds(20))
    }
}

/// Reads events from a stream until `count` have come, with a bound on the time.
public func collect(
    _ stream: AsyncThrowingStream<WorkflowEventMessage, any Error>, count: Int, timeout: Duration = .seconds(30)
) async throws -> [WorkflowEventMessage] {
    try await collect(stream, events: count, counting: { _ in 1 }, timeout: timeout)
}

/// Reads elements from a stream until they hold `count` events (`counting` says how many
/// each holds), with a bound on the time.
public func collect<Element: Sendable>(
    _ stream: AsyncThrowingStream<Element, any Error>, events count: Int, counting: @escaping @Sendable (Element) -> Int,
    timeout: Duration = .seconds(30)
) async throws -> [Element] {
    let received = ReceivedCount()
    return try await withThrowingTaskGroup(of: [Element]?.self) { group in
        group.addTask {
            var elements: [Element] = []
            var events = 0
            for try await element in stream {
                elements.append(element)
                events += counting(element)
                received.value.withLock { $0 = events }
                if events >= count { break }
            }
            return elements
        }
        group.addTask {
            try await Task.sleep(for: timeout)
            return nil
        }
        let first = try await group.next()!
        group.cancelAll()
        guard let first else {
            throw TimedOut(description: "\(received.value.withLock { $0 }) of \(count) events within \(timeout)")
        }
        return first
    }
}

/// How many events a collection has received so far, for its timeout's message.
private final class ReceivedCount: Sendable {
    let value = Mutex(0)
}

/// `workflows` workflows with `perWorkflow` events each, interleaved; each carries its
/// place in its workflow in `metadata["step"]`.
public func workflowEvents(workflows: Int, perWorkflow: Int) -> [WorkflowEvent] {
    let templates = SampleEvents.make(count: workflows * perWorkflow, workflows: workflows)
    var events: [WorkflowEvent] = []
    events.reserveCapacity(templates.count)
    for step in 0..<perWorkflow {
        for workflow in 0..<workflows {
            var event = templates[step * workflows + workflow]
            event.workflowID = "workflow-\(workflow)"
            event.metadata["step"] = String(step)
            events.append(event)
        }
    }
    return events
}

/// Offsets as runs: "0-34, 101-1400".
public func offsetRuns(_ offsets: [Int64]) -> String {
    var parts: [String] = []
    var run: (first: Int64, last: Int64)?
    for offset in offsets {
        if let current = run, offset == current.last + 1 {
            run = (current.first, offset)
            continue
        }
        if let current = run { parts.append(current.first == current.last ? "\(current.first)" : "\(current.first)-\(current.last)") }
        run = (offset, offset)
    }
    if let current = run { parts.append(current.first == current.last ? "\(current.first)" : "\(current.first)-\(current.last)") }
    return parts.joined(separator: ", ")
}
