// Decoding 1,000 sample documents (the contract's shape, 349 bytes on average) per
// iteration, reading what a handler reads: the event type, the workflow ID and the payload.
import Benchmark
import WorkflowEvents
import WorkflowEventsTesting

let documents = SampleEvents.make(count: 1_000, workflows: 200).map { try! $0.jsonBytes() }

let benchmarks: @Sendable () -> Void = {
    Benchmark(
        "decode-1000-events",
        configuration: .init(
            metrics: [.wallClock, .throughput, .mallocCountTotal],
            maxDuration: .seconds(3),
            maxIterations: 1_000,
            // The count is the same each run: any new allocation per event is a regression.
            thresholds: [.mallocCountTotal: .init(absolute: [.p90: 0])]
        )
    ) { benchmark in
        for _ in benchmark.scaledIterations {
            for document in documents {
                let event = try WorkflowEvent(validatingJSON: document)
                blackHole(event.eventType)
                blackHole(event.workflowID)
                blackHole(event.payload.data)
            }
        }
    }
}
