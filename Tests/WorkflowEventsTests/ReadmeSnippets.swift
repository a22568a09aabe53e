// The README's Swift blocks, compiled with the tests and never run. `ReadmeSnippetTests`
// checks that every line of every block appears here, in order. What a block takes for
// granted (servers, a consumer, the application's own functions) is a parameter or a stub.

import Dispatch
import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import UnixSignals
import WorkflowEvents
import WorkflowEventsService
import WorkflowEventsTesting

nonisolated func processEvent(_ event: WorkflowEvent) {
    print("Received event: \(event.eventType) from \(event.source)")
    print("Workflow: \(event.workflowID), Run: \(event.workflowRunID ?? "-")")
    print("Payload: \(event.payload.data)")
}

/// What the blocks call of the application.
private func process(_ event: WorkflowEvent) async throws {}
private func handle(_ event: WorkflowEvent) async throws {}
private func notify(_ event: WorkflowEvent) async throws {}
private func processBatch(_ events: [WorkflowEvent]) {}
private func processedSoFar(_ partitions: [TopicPartition]) -> [TopicPartition: Int64] { [:] }
private struct OffsetStore: Sendable { func offset(_ partition: TopicPartition) -> Int64 { 0 } }
private let myStore = OffsetStore()
private final class Total: Sendable {
    private let count = Atomic<Int>(0)
    func add() -> Int { count.add(1, ordering: .relaxed).newValue }
}

enum ReadmeSnippets {
    static func firstLoop(consumer: WorkflowEventConsumer) async throws {
        for try await event in consumer.events(topics: ["workflow-events"]) {
            print(event.eventType, event.workflowID)
        }
    }

    static func quickStart() async throws {
        let consumer = try WorkflowEventConsumer(bootstrapServers: "localhost:9092", groupID: "workflow-processor")
        let handled = try await consumer.consumeEvents(topics: ["workflow-events"]) { event in
            processEvent(event)
        }
        await consumer.close()  // commits what was handled and leaves the group
        _ = handled
    }

    static func streamInAService(consumer: WorkflowEventConsumer) async throws {
        for try await event in consumer.events(topics: ["workflow-events"]) {
            try await process(event)
        }
    }

    static func scoped() async throws {
        let handled = try await withWorkflowEventConsumer(bootstrapServers: "localhost:9092", groupID: "workflow-processor") { consumer in
            try await consumer.consumeEvents(topics: ["workflow-events"]) { event in
                print("Event: \(event.eventID)")
            }
        }
        // The consumer is closed here: on return, on a thrown error, and on cancellation.
        print("Handled \(handled) events.")
    }

    static func manualPolling() async throws {
        let consumer = try WorkflowEventConsumer(bootstrapServers: "localhost:9092", groupID: "workflow-processor")
        try await consumer.subscribe(["workflow-events"])
        let messages = try await consumer.poll(timeout: .milliseconds(1000))  // [TopicPartition: [ConsumerRecord]]
        for (partition, records) in messages {
            for record in records {
                let event = try record.event()  // validates, like model_validate
                print("Received event: \(event.eventID) from \(partition) at offset \(record.offset)")
            }
        }
        try await consumer.commit()
        await consumer.close()
    }

    static func group(servers: String, goal: Int) async throws -> [Int] {
        let total = Total()
        let counts = try await withThrowingTaskGroup(of: Int.self) { group in
            for member in 1...3 {
                group.addTask {
                    try await withWorkflowEventConsumer(bootstrapServers: servers, groupID: "workflow-processor") { consumer in
                        var read = 0
                        var owned: [Int32] = []
                        for try await _ in consumer.events(topics: ["workflow-events"]) {
                            read += 1
                            owned = await consumer.assignment.map(\.partition).sorted()
                            if total.add() >= goal { break }
                        }
                        print("member \(member) owns partitions \(owned) and read \(read) events")
                        return read
                    }
                }
            }
            var counts = [try await group.next()!]
            group.cancelAll()  // the other members commit, leave the group and close
            while let count = try await group.next() { counts.append(count) }
            return counts
        }
        return counts
    }

    static func errorHandling(servers: String) -> WorkflowEventConsumer.Configuration {
        var configuration = WorkflowEventConsumer.Configuration(bootstrapServers: servers, groupID: "billing")
        configuration.deadLetterTopic = "workflow-events.dead-letters"
        configuration.retryPolicy = .init(attempts: 3, initialBackoff: .milliseconds(100), maximumBackoff: .seconds(5))
        return configuration
    }

    static func manualCommit(servers: String, partitions: [TopicPartition]) async throws {
        let consumer = try WorkflowEventConsumer(bootstrapServers: servers, groupID: "manual-commit", enableAutoCommit: false)
        try await consumer.subscribe(["workflow-events"])
        let messages = try await consumer.poll(timeout: .seconds(1))
        for (_, records) in messages {
            for record in records { processEvent(try record.event()) }
        }
        try await consumer.commit()  // after processing: everything polled so far
        let committed = try await consumer.committed(partitions)  // [TopicPartition: next offset]
        _ = committed
    }

    static func seekAndPosition(servers: String) async throws {
        try await withWorkflowEventConsumer(bootstrapServers: servers) { consumer in
            try await consumer.subscribe(["workflow-events"])
            let partition = TopicPartition(topic: "workflow-events", partition: 0)
            print("Current position: \(try await consumer.position(partition))")
            try await consumer.seek(partition, to: 2)  // with a group: waits for the partition's assignment
            for try await message in consumer.messages(topics: ["workflow-events"]) where message.partition == 0 {
                if message.offset > 2 { break }  // in hand at the break: not processed, read again
                print("Next event of \(partition) is at offset \(message.offset)")  // 2
            }
        }
    }

    static func assignAndSeek(consumer: WorkflowEventConsumer, partition: TopicPartition) async throws {
        try await consumer.assign([partition: 0])  // exactly these partitions, no group rebalancing
        try await consumer.seekToBeginning([partition])  // or seekToEnd: only what is written from now on
        let hourAgo = Date().addingTimeInterval(-3600)
        try await consumer.seek([partition], to: hourAgo)  // each partition's first message written since then
        let offsets = try await consumer.offsets(for: hourAgo, in: [partition])  // the same, without moving
        try await consumer.unsubscribe()  // leave the subscription or the assignment
        _ = offsets
    }

    static func rebalanceHandlers(consumer: WorkflowEventConsumer) {
        consumer.onPartitionsRevoked(timeout: .seconds(10)) { revoked in
            try await revoked.commit(processedSoFar(revoked.partitions))  // [TopicPartition: next offset]
            // or: try await revoked.commit()   // what the consumer's readers finished of them
        }
        consumer.onPartitionsAssigned { assigned in
            for partition in assigned.partitions { try assigned.start(partition, at: myStore.offset(partition)) }
        }
    }

    static func multipleTopics(consumer: WorkflowEventConsumer) async throws {
        let topics = ["workflow-events", "workflow-alerts", "workflow-metrics"]
        for try await message in consumer.messages(topics: topics, idleTimeout: .seconds(3)) {
            print("\(message.topic): \(message.event.eventType) of \(message.event.workflowID)")
        }
        // or: try await consumer.consumeEvents(topics: topics, timeout: .seconds(10)) { event in ... }
    }

    static func batches(servers: String) async throws {
        let consumer = try WorkflowEventConsumer(bootstrapServers: servers, groupID: "workflow-batches", enableAutoCommit: false)
        for try await batch in consumer.batches(topics: ["workflow-events"], maxCount: 100, maxWait: .milliseconds(200)) {
            processBatch(batch.map(\.event))  // [WorkflowEventMessage]: each event with its topic, partition, offset, key, headers
            try await consumer.commit()  // after the batch is processed: it includes the batch in hand
        }
    }

    static func gracefulShutdown(servers: String) async throws {
        let service = Task {
            try await withWorkflowEventConsumer(bootstrapServers: servers, groupID: "graceful") { consumer in
                for try await event in consumer.events(topics: ["workflow-events"]) { try await process(event) }
            }
        }
        let source = DispatchSource.makeSignalSource(signal: SIGTERM, queue: .global())
        signal(SIGTERM, SIG_IGN)
        source.setEventHandler { service.cancel() }
        source.resume()
        try await service.value
    }

    static func ordered(servers: String) async throws {
        let consumer = try WorkflowEventConsumer(bootstrapServers: servers, groupID: "notifier")
        try await consumer.process(topics: ["workflow-events"], maxConcurrency: 16) { event in
            try await notify(event)  // one workflow's events never overlap: started before completed
        }  // runs until the task is cancelled
    }

    static func producing(servers: String, event: WorkflowEvent, manyEvents: [WorkflowEvent]) async throws {
        let producer = try WorkflowEventProducer(bootstrapServers: servers)  // idempotent by default
        let report = try await producer.send(event, to: "workflow-events")  // partition and offset
        let reports = try await producer.send(manyEvents, to: "workflow-events")  // in order, awaited together
        await producer.close()
        _ = (report, reports)
    }

    static func testing() async throws {
        try await withMockKafkaCluster(brokers: 3) { cluster in
            try cluster.createTopic("workflow-events", partitions: 6)
            // cluster.bootstrapServers, cluster.setBrokerDown(2), cluster.setRoundTripTime(.milliseconds(500), broker: 1),
            // cluster.pushRequestErrors(.fetch, [.notLeaderForPartition]), cluster.setPartitionLeader(...)
        }
    }

    static func asAService(configuration: WorkflowEventConsumer.Configuration, logger: Logger) async {
        do {
            let service = try WorkflowEventService(configuration: configuration, topics: ["workflow-events"], logger: logger) { event in
                try await handle(event)
            }
            let group = ServiceGroup(services: [service], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
            try await group.run()
        } catch {
            logger.error("the service stopped", metadata: ["error": "\(error)"])
            exit(1)
        }
    }

    static func besideAnHTTPServer(httpServer: any Service, workflowEvents: WorkflowEventService, logger: Logger) async throws {
        let group = ServiceGroup(services: [httpServer, workflowEvents], gracefulShutdownSignals: [.sigterm], logger: logger)
        try await group.run()
    }
}
