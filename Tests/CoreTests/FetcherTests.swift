import DequeModule
import Logging
import Synchronization
import Testing

@testable import WorkflowEvents

/// The fetcher on the in-memory client: what waits in it, in which order, and the
/// keep-alive's pause.
@Suite("Fetcher")
struct FetcherTests {
    let fixture = Fixture(partitions: 2, events: 40, group: "fetcher-tests")
    let context = ConsumerClientContext(
        logger: Logger(label: "fetcher-tests"), metrics: ConsumerMetrics(group: "fetcher-tests"), listeners: RebalanceListeners())

    func makeFetcher(clock: VirtualClock) async throws -> (Fetcher, InMemoryConsumerClient) {
        let client = InMemoryConsumerClient(
            kafka: fixture.kafka, context: context, configuration: fixture.configuration(), rebalanceProtocol: .eager, clock: clock)
        try await client.subscribe([fixture.topic])
        let fetcher = Fetcher(client: client, clock: clock.consumerClock, context: context, batchSize: 8, inGroup: true)
        return (fetcher, client)
    }

    /// The offsets that wait in the buffer, per partition, in order.
    func waiting(_ fetcher: Fetcher) -> [Int32: [Int64]] {
        var offsets: [Int32: [Int64]] = [:]
        for message in fetcher.buffer.messages { offsets[message.partition, default: []].append(message.offset) }
        return offsets
    }

    func expectInOrderWithoutGaps(_ offsets: [Int32: [Int64]], sourceLocation: SourceLocation = #_sourceLocation) {
        for (partition, list) in offsets {
            let expected = Array((list.first ?? 0)..<((list.first ?? 0) + Int64(list.count)))
            #expect(list == expected, "partition \(partition): \(list)", sourceLocation: sourceLocation)
        }
    }

    @Test("a batch read ahead is taken by the next owner of the path, before anything fetched after it")
    func readAheadFirst() async throws {
        let clock = VirtualClock()
        let (fetcher, client) = try await makeFetcher(clock: clock)
        await fetcher.fill(until: nil, readAhead: .raw) { true }
        #expect(fetcher.buffer.count == 8)
        #expect(!fetcher.isPathOwned)
        // The next owner (here a seek would be) finds the read-ahead's batch in the buffer.
        await fetcher.acquire()
        #expect(fetcher.buffer.count == 16, "buffer after taking the read-ahead: \(waiting(fetcher))")
        fetcher.release()
        await fetcher.fill(until: nil, readAhead: .none) { true }
        #expect(fetcher.buffer.count == 24)
        expectInOrderWithoutGaps(waiting(fetcher))
        #expect(client.fetchCount >= 1)
        fetcher.destroyAll()
        fixture.expectNoMessageLeaked()
    }

    @Test("no read-ahead once the reader stops reading: nothing is taken that nobody asked for")
    func noReadAheadWhenStopped() async throws {
        let (fetcher, _) = try await makeFetcher(clock: VirtualClock())
        await fetcher.fill(until: nil, readAhead: .decoded) { false }
        #expect(fetcher.buffer.count == 8)
        await fetcher.absorbReadAhead()
        #expect(fetcher.buffer.count == 8, "a batch was read ahead after the reader stopped")
        fetcher.destroyAll()
        fixture.expectNoMessageLeaked()
    }

    @Test("messages held for a paused partition go back in front, in order, when it is resumed")
    func heldInFront() async throws {
        let (fetcher, _) = try await makeFetcher(clock: VirtualClock())
        await fetcher.fill(until: nil, readAhead: .none) { true }
        let p0 = fixture.partition(0)
        var others: [FetchedMessage] = []
        while let message = fetcher.buffer.popFirst() {
            if message.partition == 0 { fetcher.hold(message, of: p0) } else { others.append(message) }
        }
        let held = 8 - others.count
        #expect(held > 0, "the first batch had nothing of partition 0")
        #expect(fetcher.count == held)
        #expect(fetcher.firstOffset(of: p0) == 0)
        fetcher.buffer.prepend(others)
        fetcher.releaseHeld([p0])
        #expect(fetcher.buffer.messages.prefix(held).allSatisfy { $0.partition == 0 })
        expectInOrderWithoutGaps(waiting(fetcher))
        fetcher.destroyAll()
        fixture.expectNoMessageLeaked()
    }

    @Test("after a rebalance, what was fetched for revoked partitions is dropped, and destroyed")
    func revokedDropped() async throws {
        let (fetcher, client) = try await makeFetcher(clock: VirtualClock())
        await fetcher.fill(until: nil, readAhead: .none) { true }
        #expect(Set(fetcher.buffer.messages.map(\.partition)) == [0, 1])
        client.revoke([fixture.partition(1)])
        await fetcher.fill(until: nil, readAhead: .none) { true }
        #expect(fetcher.buffer.messages.allSatisfy { $0.partition == 0 }, "still buffered: \(waiting(fetcher))")
        fetcher.destroyAll()
        fixture.expectNoMessageLeaked()
    }

    @Test("the keep-alive's pause is reported once, and the next fill lifts it for the partitions the application did not pause")
    func keepAlivePauseLifted() async throws {
        let (fetcher, client) = try await makeFetcher(clock: VirtualClock())
        await fetcher.fill(until: nil, readAhead: .none) { true }
        let (p0, p1) = (fixture.partition(0), fixture.partition(1))
        context.state.withLock { $0.userPaused = [p1] }
        let began = await fetcher.serveWhileBusy(pause: true)
        let again = await fetcher.serveWhileBusy(pause: true)
        #expect(began && !again)
        #expect(client.state.withLock { $0.paused } == [p0, p1])
        await fetcher.fill(until: nil, readAhead: .none) { true }
        #expect(client.state.withLock { $0.paused } == [p1], "paused after the fill")
        fetcher.destroyAll()
        fixture.expectNoMessageLeaked()
    }
}
