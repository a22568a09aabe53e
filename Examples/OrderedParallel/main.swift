// OrderedParallel: many workflows at once, each workflow's events in order.
// `process(topics:maxConcurrency:)` runs up to 16 handlers together; events of one workflow
// wait for each other, so a workflow's `started` is always handled before its `completed`.
// The offset committed for a partition never passes an event still being handled.
// Each handler here "calls a slow API" for 20 ms; the example checks the order it saw and
// stops once every sample event was handled (cancelling `process` commits and leaves).
//
//   swift run OrderedParallel [--bootstrap-servers localhost:9092]
import ExampleSupport
import Synchronization
import WorkflowEvents

/// The sequence numbers each workflow's handlers saw, in the order they finished.
final class Seen: Sendable {
    private let state = Mutex<(byWorkflow: [String: [Int]], running: Int, peak: Int)>(([:], 0, 0))

    func begin() {
        state.withLock {
            $0.running += 1
            $0.peak = max($0.peak, $0.running)
        }
    }

    func end(_ event: WorkflowEvent) -> Int {
        state.withLock { state in
            state.running -= 1
            state.byWorkflow[event.workflowID, default: []].append(Int(event.metadata["sequence"] ?? "") ?? -1)
            return state.byWorkflow.values.reduce(0) { $0 + $1.count }
        }
    }

    var summary: (byWorkflow: [String: [Int]], peak: Int) { state.withLock { ($0.byWorkflow, $0.peak) } }
}

nonisolated func orderedParallel(_ setting: ExampleSetting) async throws {
    let seen = Seen()
    let goal = setting.sampleEvents
    let consumer = try WorkflowEventConsumer(
        bootstrapServers: setting.bootstrapServers, groupID: "ordered-parallel", properties: setting.properties)
    let started = ContinuousClock.now
    let processing = Task {
        try await consumer.process(topics: ["workflow-events"], maxConcurrency: 16) { event in
            seen.begin()
            try await Task.sleep(for: .milliseconds(20))  // the slow call
            if seen.end(event) == goal { print("all \(goal) events handled") }
        }
    }
    while seen.summary.byWorkflow.values.reduce(0, { $0 + $1.count }) < goal {
        try await Task.sleep(for: .milliseconds(50))
    }
    processing.cancel()
    try await processing.value
    let (byWorkflow, peak) = seen.summary
    for workflow in byWorkflow.keys.sorted() {
        let sequences = byWorkflow[workflow]!
        print("\(workflow): \(sequences.count) events, in order: \(sequences == sequences.sorted())")
    }
    let elapsed = ContinuousClock.now - started
    let milliseconds = elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000
    print("Handled \(goal) events of \(byWorkflow.count) workflows in \(milliseconds) ms, up to \(peak) at once.")
}

await runExample("OrderedParallel", sampleEvents: 400, orderedParallel)
