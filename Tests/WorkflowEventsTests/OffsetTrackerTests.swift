import Testing

@testable import WorkflowEvents

/// The bookkeeping behind every stored offset, without a cluster: what is stored when
/// records finish in order, out of order, at a revocation and after a seek.
@Suite("Offset tracker")
struct OffsetTrackerTests {
    let p0 = TopicPartition(topic: "t", partition: 0)
    let p1 = TopicPartition(topic: "t", partition: 1)

    func stores(_ tracker: inout OffsetTracker) -> [TopicPartition: Int64] {
        Dictionary(uniqueKeysWithValues: tracker.takeStores().map { ($0.0, $0.1) })
    }

    @Test("readers that finish in order store the offset after the last finished record, once")
    func inOrder() {
        var tracker = OffsetTracker()
        #expect(stores(&tracker).isEmpty)
        tracker.finish(through: 9, of: p0)
        tracker.finish(through: 4, of: p1)
        #expect(stores(&tracker) == [p0: 10, p1: 5])
        #expect(stores(&tracker).isEmpty)
        tracker.finish(through: 12, of: p0)
        #expect(stores(&tracker) == [p0: 13])
    }

    @Test("out of order: the first unfinished offset is stored, never one past it")
    func outOfOrder() {
        var tracker = OffsetTracker()
        for offset in Int64(5)...9 { tracker.take(offset, of: p0) }
        #expect(stores(&tracker) == [p0: 5])
        tracker.finish(7, of: p0)
        tracker.finish(9, of: p0)
        #expect(stores(&tracker).isEmpty)
        tracker.finish(5, of: p0)
        #expect(stores(&tracker) == [p0: 6])
        tracker.finish(6, of: p0)
        #expect(tracker.committable(of: p0) == 8)
        tracker.finish(8, of: p0)
        #expect(stores(&tracker) == [p0: 10])
        // A finish that was never taken (or finished twice) changes nothing.
        tracker.finish(8, of: p0)
        tracker.finish(3, of: p1)
        #expect(stores(&tracker).isEmpty)
    }

    @Test("poll: records taken are stored only once every one of them is finished")
    func pollBatch() {
        var tracker = OffsetTracker()
        for offset in Int64(0)...4 { tracker.take(offset, of: p0) }
        tracker.take(20, of: p1)
        #expect(stores(&tracker) == [p0: 0, p1: 20])
        tracker.finishAllTaken()
        #expect(stores(&tracker) == [p0: 5, p1: 21])
    }

    @Test("a revocation returns the committable offsets and forgets the partitions")
    func revoke() {
        var tracker = OffsetTracker()
        tracker.take(3, of: p0)
        tracker.take(4, of: p0)
        tracker.finish(4, of: p0)
        tracker.finish(through: 7, of: p1)
        let revoked = Dictionary(uniqueKeysWithValues: tracker.revoke([p0, p1, TopicPartition(topic: "t", partition: 2)]).map { ($0.0, $0.1) })
        #expect(revoked == [p0: 3, p1: 8])
        #expect(tracker.partitions.isEmpty)
        // The partition comes back: its state starts afresh, and the same offset is stored again.
        tracker.finish(through: 7, of: p1)
        #expect(stores(&tracker) == [p1: 8])
    }

    @Test("a position moved back (a seek, a reset) is followed, not held at the highest offset")
    func positionMovesBack() {
        var tracker = OffsetTracker()
        tracker.finish(through: 99, of: p0)
        #expect(stores(&tracker) == [p0: 100])
        tracker.finish(through: 3, of: p0)
        #expect(stores(&tracker) == [p0: 4])
        tracker.take(50, of: p1)
        tracker.take(51, of: p1)
        tracker.take(10, of: p1)  // reset to 10: 50 and 51 no longer count
        #expect(tracker.committable(of: p1) == 10)
        tracker.finish(10, of: p1)
        #expect(stores(&tracker) == [p1: 11])
        tracker.forget([p0])
        #expect(tracker.committable(of: p0) == nil)
    }

    @Test("an offset committed by the application is stored and reading continues from it")
    func override() {
        var tracker = OffsetTracker()
        tracker.finish(through: 9, of: p0)
        _ = stores(&tracker)
        tracker.override(p0, next: 4)
        #expect(stores(&tracker) == [p0: 4])
        tracker.finish(through: 5, of: p0)
        #expect(stores(&tracker) == [p0: 6])
    }

    @Test("random take and finish orders: the stored offset is always the first unfinished one")
    func randomOrders() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<300 {
            var tracker = OffsetTracker()
            let count = Int64.random(in: 1...40, using: &generator)
            for offset in 0..<count { tracker.take(offset, of: p0) }
            var finished = Set<Int64>()
            var lastStored: Int64 = -1
            for offset in (0..<count).shuffled(using: &generator) {
                tracker.finish(offset, of: p0)
                finished.insert(offset)
                let expected = (0...count).first { !finished.contains($0) }!
                #expect(tracker.committable(of: p0) == expected)
                if let stored = stores(&tracker)[p0] {
                    #expect(stored == expected)
                    #expect(stored > lastStored)
                    lastStored = stored
                }
            }
            #expect(tracker.committable(of: p0) == count)
        }
    }
}
