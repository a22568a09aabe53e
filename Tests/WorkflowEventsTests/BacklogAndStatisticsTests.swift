import Testing

@testable import WorkflowEvents

@Suite("Backlog and statistics reports (no cluster)")
struct BacklogAndStatisticsTests {
    let p0 = TopicPartition(topic: "t", partition: 0)
    let p1 = TopicPartition(topic: "t", partition: 1)

    @Test("a backlog is caught up only when every partition is read to its known end")
    func backlog() {
        var backlog = Backlog()
        backlog.add(p0, next: 10, end: 10)
        backlog.add(p1, next: 12, end: 10)  // past the last known end (it moved since): caught up
        #expect(backlog.isCaughtUp, "\(backlog)")

        backlog.add(p0, next: 4, end: 10)
        #expect(!backlog.isCaughtUp)
        #expect(backlog.events == 6)
        #expect(backlog.description == "6 events behind on 1 partitions")

        var unknown = Backlog()
        unknown.add(p0, next: nil, end: 10)
        unknown.add(p1, next: 3, end: nil)
        #expect(!unknown.isCaughtUp)
        #expect(unknown.unknown == [p0, p1])
        #expect(unknown.description == "the end of 2 partitions not known yet")

        var waiting = Backlog()
        waiting.awaitingAssignment = true
        #expect(!waiting.isCaughtUp)
        #expect(waiting.description == "waiting for the group to assign partitions again")
    }

    func report(_ json: String) -> StatisticsReport? {
        let bytes = Array(json.utf8)
        return bytes.withUnsafeBytes { StatisticsReport(json: $0) }
    }

    @Test("statistics: a connected broker is seen, librdkafka's internal broker is not, and the lag is read")
    func statistics() throws {
        let up = try #require(
            report(
                #"""
                {"brokers": {":0/internal": {"source": "internal", "state": "UP"},
                             "127.0.0.1:9092/1": {"source": "learned", "state": "UP"}},
                 "topics": {"t": {"partitions": {"0": {"consumer_lag": 7}, "-1": {"consumer_lag": 3}}}}}
                """#))
        #expect(up.anyBrokerUp)
        #expect(up.lag == [p0: 7])

        let down = try #require(
            report(
                #"""
                {"brokers": {":0/internal": {"source": "internal", "state": "UP"},
                             "127.0.0.1:9092/bootstrap": {"source": "configured", "state": "CONNECT"},
                             "127.0.0.1:9092/1": {"source": "learned", "state": "DOWN"}}}
                """#))
        #expect(!down.anyBrokerUp)
        #expect(down.lag == nil)
        #expect(report("not json") == nil)
    }
}
