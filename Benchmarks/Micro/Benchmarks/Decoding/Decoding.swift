// Decoding sample documents (the contract's shape, 349 bytes on average), reading what a
// handler reads: the event type, the workflow ID and the payload. One benchmark over the
// mixed stream (1,000 documents per iteration), one per kind of event (each event type of
// the sample stream, 1,000 of it per iteration), and one over the contract's smallest valid
// document.
import Benchmark
import WorkflowEvents
import WorkflowEventsTesting

let sample = SampleEvents.make(count: 20_000, workflows: 200)
let documents = sample.prefix(1_000).map { try! $0.jsonBytes() }
/// 1,000 documents of each event type of the sample stream, in their order.
let documentsByKind: [(String, [[UInt8]])] = Dictionary(grouping: sample, by: \.eventType.rawValue)
    .filter { $0.value.count >= 1_000 }
    .map { ($0.key, $0.value.prefix(1_000).map { try! $0.jsonBytes() }) }
    .sorted { $0.0 < $1.0 }
/// The contract's required fields only, 1,000 times.
let minimal = Array(repeating: HostileInputs.document([:]), count: 1_000)

func decodeBenchmark(_ name: String, _ documents: [[UInt8]]) {
    Benchmark(
        name,
        configuration: .init(
            metrics: [.wallClock, .throughput, .mallocCountTotal],
            maxDuration: .seconds(2),
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

let benchmarks: @Sendable () -> Void = {
    decodeBenchmark("decode-1000-events", documents)
    for (kind, documents) in documentsByKind {
        decodeBenchmark("decode-1000-\(kind)", documents)
    }
    decodeBenchmark("decode-1000-minimal", minimal)
}
