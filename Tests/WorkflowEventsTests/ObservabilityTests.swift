import Foundation
import InMemoryLogging
import InMemoryTracing
import Logging
import Metrics
import MetricsTestKit
import ServiceLifecycle
import Synchronization
import TestSupport
import Testing
import Tracing
import WorkflowEvents
import WorkflowEventsService
import WorkflowEventsTesting

/// One metrics backend and one tracer for this test process (both can be bootstrapped once).
enum Observed {
    static let metrics: TestMetrics = {
        let metrics = TestMetrics()
        MetricsSystem.bootstrap(metrics)
        return metrics
    }()

    static let tracer: InMemoryTracer = {
        let tracer = InMemoryTracer()
        InstrumentationSystem.bootstrap(tracer)
        return tracer
    }()
}

@Suite("Operating: service, metrics, rebalances, pause, tracing, health")
struct ObservabilityTests {
    @Test("metrics: events, invalid events, handler failures, dead letters, commits, rebalances, handler time and lag")
    func metrics() async throws {
        let metrics = Observed.metrics
        let cluster = try MockKafkaCluster()
        defer { cluster.shutdown() }
        try cluster.createTopic("measured", partitions: 1)
        try cluster.createTopic("measured.dead-letters", partitions: 1)
        let events = SampleEvents.make(count: 10)
        var values: [[UInt8]?] = try events.map { try $0.jsonBytes() }
        values.insert(Array("not json".utf8), at: 3)
        values.append(Array("{}".utf8))
        try await produceRecords(values, to: "measured", on: cluster)
        var configuration = groupConfiguration(cluster, group: "measured")
        configuration.deadLetterTopic = "measured.dead-letters"
        configuration.statisticsInterval = .milliseconds(200)
        struct Refused: Error {}
        let consumer = try WorkflowEventConsumer(configuration: configuration)
        try await consumer.consumeEvents(topics: ["measured"], timeout: .seconds(2)) { event in
            if event == events[5] { throw Refused() }
        }
        // The total is set from the first statistics; a partition's lag once librdkafka knows
        // its committed and end offsets.
        try await waitUntil("the lag gauges are set", timeout: .seconds(20)) {
            let partitionLag = try? metrics.expectGauge(
                "workflow_events_consumer_lag", [("group", "measured"), ("topic", "measured"), ("partition", "0")])
            let total = try? metrics.expectGauge("workflow_events_consumer_lag_total", [("group", "measured")])
            return partitionLag?.lastValue != nil && total?.lastValue != nil
        }
        await consumer.close()
        let group = [("group", "measured")]
        #expect(try metrics.expectCounter("workflow_events_consumer_events_total", group).totalValue == 10)
        #expect(try metrics.expectCounter("workflow_events_consumer_invalid_events_total", group).totalValue == 2)
        #expect(try metrics.expectCounter("workflow_events_consumer_handler_failures_total", group).totalValue == 1)
        #expect(try metrics.expectCounter("workflow_events_consumer_dead_lettered_total", group).totalValue == 3)
        #expect(try metrics.expectCounter("workflow_events_consumer_commits_total", group).totalValue >= 1)
        #expect(try metrics.expectCounter("workflow_events_consumer_rebalances_total", group).totalValue >= 1)
        #expect(try metrics.expectTimer("workflow_events_consumer_handler_duration", group).values.count == 10)
        let lag = try metrics.expectGauge("workflow_events_consumer_lag", [("group", "measured"), ("topic", "measured"), ("partition", "0")])
        #expect(lag.lastValue != nil)
    }

    @Test("rebalance events: eager assignment revokes everything, cooperative-sticky only what moves")
    func rebalanceEvents() async throws {
        for strategy in ["range", "cooperative-sticky"] {
            let fixture = try await makeFixture(partitions: 6, events: 60)
            defer { fixture.cluster.shutdown() }
            try await letFollowersSyncFirst(fixture.cluster)
            var configuration = groupConfiguration(fixture.cluster, group: "rebalance-\(strategy)")
            configuration.properties["partition.assignment.strategy"] = strategy
            let first = try WorkflowEventConsumer(configuration: configuration)
            let changes = first.rebalanceEvents()
            let seen = Mutex<[RebalanceEvent]>([])
            let watching = Task { for await change in changes { seen.withLock { $0.append(change) } } }
            let reading = Task { for try await _ in first.events(topics: [fixture.topic]) {} }
            try await waitUntil("the first member owns every partition", timeout: .seconds(30)) { await first.assignment.count == 6 }
            let second = try WorkflowEventConsumer(configuration: configuration)
            let secondReading = Task { for try await _ in second.events(topics: [fixture.topic]) {} }
            try await waitUntil("the two members share the partitions", timeout: .seconds(30)) {
                let a = await first.assignment
                let b = await second.assignment
                return !a.isEmpty && !b.isEmpty && a.union(b).count == 6
            }
            let kept = await first.assignment
            reading.cancel()
            secondReading.cancel()
            _ = await reading.result
            _ = await secondReading.result
            // Both members leave at once: a close may wait for the mock's answer to a JoinGroup
            // it holds for up to 5 s; the close gives up on the group after `closeTimeout` (10 s).
            try await waitUntil("the first consumer closed", timeout: .seconds(15)) { await first.isClosed }
            _ = await watching.value  // the stream ends when the consumer closes
            let events = seen.withLock { $0 }
            let all = (0..<6).map { TopicPartition(topic: fixture.topic, partition: Int32($0)) }
            #expect(events.first == RebalanceEvent(kind: .assigned, partitions: all, time: events.first?.time ?? Date()))
            let revokedBeforeClose = events.dropFirst().prefix { $0.kind != .revoked || Set($0.partitions) != kept }
            if strategy == "range" {
                #expect(events.contains { $0.kind == .revoked && $0.partitions == all }, "eager: \(events)")
            } else {
                // Cooperative: until the close, what is revoked is only what moved.
                let moved = Set(all).subtracting(kept)
                let revoked = revokedBeforeClose.filter { $0.kind == .revoked }
                #expect(!revoked.isEmpty && revoked.allSatisfy { Set($0.partitions).isSubset(of: moved) }, "cooperative: \(events)")
            }
        }
    }

    @Test("tracing: the handler's span continues the producer's trace, named after the event type, with messaging attributes")
    func tracing() async throws {
        let tracer = Observed.tracer
        let cluster = try MockKafkaCluster()
        defer { cluster.shutdown() }
        try cluster.createTopic("traced", partitions: 1)
        let event = SampleEvents.make(count: 1)[0]
        let producer = try WorkflowEventProducer(bootstrapServers: cluster.bootstrapServers)
        let publishSpanID = try await withSpan("publish workflow event") { span in
            _ = try await producer.send(event, to: "traced")
            return span.context.inMemorySpanContext!.spanID
        }
        await producer.close()
        let consumer = try WorkflowEventConsumer(configuration: groupConfiguration(cluster, group: "traced"))
        let inHandler = Mutex<String?>(nil)
        try await consumer.consumeEvents(topics: ["traced"], timeout: .seconds(1)) { _ in
            inHandler.withLock { $0 = ServiceContext.current?.inMemorySpanContext?.spanID }
        }
        await consumer.close()
        let spans = tracer.finishedSpans
        let publish = try #require(spans.first { $0.spanID == publishSpanID })
        let handler = try #require(spans.first { $0.operationName == event.eventType.rawValue && $0.spanContext.parentSpanID == publishSpanID })
        #expect(handler.traceID == publish.traceID)
        #expect(inHandler.withLock { $0 } == handler.spanID, "the handler did not run inside its span")
        #expect(handler.kind == .consumer)
        #expect(handler.attributes["messaging.system"]?.toSpanAttribute() == "kafka")
        #expect(handler.attributes["messaging.destination.name"]?.toSpanAttribute() == "traced")
        #expect(handler.attributes["messaging.consumer.group.name"]?.toSpanAttribute() == "traced")

        // A `for try await` body opts into the same span.
        let reader = try WorkflowEventConsumer(configuration: groupConfiguration(cluster, group: "traced-loop"))
        let inLoop = Mutex<String?>(nil)
        for try await message in reader.messages(topics: ["traced"]) {
            try await message.withConsumerSpan(group: "traced-loop") {
                inLoop.withLock { $0 = ServiceContext.current?.inMemorySpanContext?.spanID }
            }
            break
        }
        await reader.close()
        let loopSpan = try #require(tracer.finishedSpans.first { $0.spanID == inLoop.withLock { $0 } })
        #expect(loopSpan.operationName == event.eventType.rawValue)
        #expect(loopSpan.spanContext.parentSpanID == publishSpanID)
        #expect(loopSpan.kind == .consumer)
        #expect(loopSpan.attributes["messaging.consumer.group.name"]?.toSpanAttribute() == "traced-loop")
        #expect(loopSpan.attributes["messaging.kafka.offset"]?.toSpanAttribute() == 0)

        // `process` runs each handler in its span too.
        let processor = try WorkflowEventConsumer(configuration: groupConfiguration(cluster, group: "traced-process"))
        let (handled, signal) = AsyncStream.makeStream(of: String?.self)
        let processing = Task {
            try await processor.process(topics: ["traced"]) { _ in
                signal.yield(ServiceContext.current?.inMemorySpanContext?.spanID)
            }
        }
        var inProcess: String?
        for await spanID in handled {
            inProcess = spanID
            break
        }
        processing.cancel()
        _ = try? await processing.value
        await processor.close()
        let processSpan = try #require(tracer.finishedSpans.first { $0.spanID == inProcess }, "process's handler ran outside a span")
        #expect(processSpan.operationName == event.eventType.rawValue)
        #expect(processSpan.spanContext.parentSpanID == publishSpanID)
        #expect(processSpan.attributes["messaging.consumer.group.name"]?.toSpanAttribute() == "traced-process")
    }

    @Test("health: assigned partitions, last event time, lag from the statistics, last error, closed")
    func health() async throws {
        let fixture = try await makeFixture(partitions: 2, events: 30)
        defer { fixture.cluster.shutdown() }
        var configuration = groupConfiguration(fixture.cluster, group: "health")
        configuration.statisticsInterval = .milliseconds(200)
        let consumer = try WorkflowEventConsumer(configuration: configuration)
        let before = await consumer.health
        #expect(!before.isReady && before.lastEventTime == nil && before.lag == nil)
        let started = Date()
        let reading = Task { for try await _ in consumer.events(topics: [fixture.topic]) {} }
        try await waitUntil("caught up, as the statistics say", timeout: .seconds(30)) {
            let health = await consumer.health
            return health.isReady && health.lastEventTime != nil && health.lag == 0
        }
        let health = await consumer.health
        #expect(health.assignedPartitions.count == 2)
        #expect(health.lastEventTime! >= started)
        #expect(health.lastError == nil)
        // lag(): per assigned partition, committed and end offsets, as the broker says. A
        // rebalance while the group formed (seen under load) makes a partition's events come
        // again, stored only once the reader has had them: commit until the commit is whole.
        var lag: [PartitionLag] = []
        try await waitUntil("committed up to the end offsets", timeout: .seconds(30)) {
            try await consumer.commit()
            lag = try await consumer.lag()
            return lag.allSatisfy { $0.committedOffset == $0.endOffset && $0.lag == 0 }
        }
        #expect(Set(lag.map(\.partition)) == health.assignedPartitions)
        #expect(lag.reduce(0) { $0 + $1.endOffset } == 30)
        reading.cancel()
        _ = await reading.result
        try await waitUntil("closed", timeout: .seconds(5)) { await consumer.health.isClosed }
    }

    @Test("librdkafka's log lines reach the injected logger with their levels mapped and their facility")
    func librdkafkaLogs() async throws {
        let (logger, logs) = recordingLogger()
        let consumer = try WorkflowEventConsumer(
            configuration: .init(bootstrapServers: "127.0.0.1:1", groupID: "logs", connectionTimeout: .seconds(1)), logger: logger)
        await #expect(throws: KafkaError.self) { try await consumer.subscribe(["anything"]) }
        await consumer.close()
        let connectionErrors = logs.entries.filter { $0.metadata["librdkafka.facility"] != nil && $0.level == .error }
        #expect(!connectionErrors.isEmpty, "no librdkafka error line among \(logs.entries.count)")
        #expect(connectionErrors.allSatisfy { $0.metadata["kafka.group"].map { "\($0)" } == "logs" })
    }
}
