// Reading 20,000 events from the embedded cluster with `for try await` per iteration: a new
// consumer without a group each time, the loop body reading the event type, the workflow ID
// and the payload, then the close. Allocations include librdkafka's (one per message) and
// the embedded cluster's own threads', which vary a little from run to run.
import Benchmark
import WorkflowEvents
import WorkflowEventsTesting

let eventCount = 20_000
let topic = "bench"
nonisolated(unsafe) var cluster: MockKafkaCluster?

let benchmarks: @Sendable () -> Void = {
    Benchmark(
        "stream-20000-events",
        configuration: .init(
            metrics: [.wallClock, .throughput, .mallocCountTotal],
            maxDuration: .seconds(10),
            maxIterations: 20,
            thresholds: [.mallocCountTotal: .init(relative: [.p90: 3.0])],
            setup: {
                let mock = try MockKafkaCluster()
                try mock.createTopic(topic, partitions: 8)
                let producer = try WorkflowEventProducer(
                    configuration: .init(bootstrapServers: mock.bootstrapServers, properties: ["log_level": "3"]))
                _ = try await producer.send(SampleEvents.make(count: eventCount, workflows: 2_000), to: topic)
                await producer.close()
                cluster = mock
            },
            teardown: {
                cluster?.shutdown()
                cluster = nil
            }
        )
    ) { benchmark in
        guard let cluster else { fatalError("the setup made no cluster") }
        for _ in benchmark.scaledIterations {
            var configuration = WorkflowEventConsumer.Configuration(bootstrapServers: cluster.bootstrapServers)
            configuration.properties = ["log_level": "3"]
            let consumer = try WorkflowEventConsumer(configuration: configuration)
            var read = 0
            for try await event in consumer.events(topics: [topic]) {
                blackHole(event.eventType)
                blackHole(event.workflowID)
                blackHole(event.payload.data)
                read += 1
                if read == eventCount { break }
            }
            await consumer.close()
        }
    }
}
