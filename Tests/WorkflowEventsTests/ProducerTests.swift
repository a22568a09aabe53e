import Foundation
import TestSupport
import Testing
import WorkflowEvents
import WorkflowEventsTesting

@Suite("Producer and embedded cluster")
struct ProducerTests {
    @Test("send awaits the broker and reports the partition and offset; one workflow stays on one partition")
    func sendReports() async throws {
        let fixture = try await makeFixture(partitions: 4)
        defer { fixture.cluster.shutdown() }
        let producer = try WorkflowEventProducer(bootstrapServers: fixture.cluster.bootstrapServers)
        #expect(producer.configuration.enableIdempotence)
        let events = SampleEvents.make(count: 40)
        var reports: [DeliveryReport] = []
        for event in events.prefix(10) {
            reports.append(try await producer.send(event, to: fixture.topic))
        }
        reports += try await producer.send(Array(events.dropFirst(10)), to: fixture.topic)
        try await producer.flush()
        var partitionOf: [String: Int32] = [:]
        for (event, report) in zip(events, reports) {
            #expect(report.topic == fixture.topic)
            if let known = partitionOf[event.workflowID] { #expect(known == report.partition) }
            partitionOf[event.workflowID] = report.partition
        }
        for partition in Set(reports.map(\.partition)) {
            let offsets = reports.filter { $0.partition == partition }.map(\.offset)
            #expect(offsets == Array(0..<Int64(offsets.count)))
        }
        await producer.close()
        await #expect(throws: WorkflowEventsError.self) { try await producer.send(events[0], to: fixture.topic) }

        // What was written reads back equal, with the contract's key.
        let consumer = try WorkflowEventConsumer(bootstrapServers: fixture.cluster.bootstrapServers)
        let received = try await collect(consumer.messages(topics: [fixture.topic]), count: 40)
        await consumer.close()
        #expect(Set(received.map(\.event)) == Set(events))
        #expect(received.allSatisfy { $0.key == Array($0.event.workflowID.utf8) })
    }

    @Test("the cluster's fault switches: a broker down and back up, the stream still delivers everything")
    func brokerDownAndUp() async throws {
        let fixture = try await makeFixture(partitions: 2, events: 20, brokers: 3)
        defer { fixture.cluster.shutdown() }
        #expect(throws: WorkflowEventsError.self) { try fixture.cluster.setBrokerDown(9) }
        let consumer = try WorkflowEventConsumer(bootstrapServers: fixture.cluster.bootstrapServers)
        let first = try await collect(consumer.messages(topics: [fixture.topic]), count: 20)
        #expect(first.count == 20)
        // Leaders move off broker 1 (the mock does not elect new leaders by itself), then it goes down.
        try fixture.cluster.setPartitionLeader(topic: fixture.topic, partition: 0, broker: 2)
        try fixture.cluster.setPartitionLeader(topic: fixture.topic, partition: 1, broker: 3)
        try fixture.cluster.setBrokerDown(1)
        try fixture.cluster.setRoundTripTime(.milliseconds(50), broker: 3)
        let more = SampleEvents.make(count: 20, seed: 9)
        _ = try await produce(more, to: fixture.topic, on: fixture.cluster)
        try fixture.cluster.setBrokerUp(1)
        // The event in hand when the first loop broke comes again first, then the new ones.
        let second = try await collect(consumer.messages(topics: [fixture.topic]), count: 21)
        #expect(second.first?.event == first.last?.event)
        #expect(Set(second.dropFirst().map(\.event)) == Set(more))
        await consumer.close()
    }
}
