import Foundation
import Synchronization
import Testing
import WorkflowEventsTesting

@testable import WorkflowEvents

/// A loop body that is slow but alive: the consumer keeps asking the client (which serves
/// librdkafka's callbacks and its max.poll.interval.ms), and pauses fetching once the body
/// has been busy for half of max.poll.interval.ms. On a virtual clock.
@Suite("The keep-alive of a busy reader, on the in-memory client", .timeLimit(.minutes(1)))
struct KeepAliveTests {
    /// Moves the clock by one keep-alive interval, and waits (without sleeping) until the
    /// keep-alive has done its round and sleeps again: it is the only task on the clock.
    func tick(_ clock: VirtualClock) async {
        clock.advance(by: WorkflowEventConsumer.serviceInterval)
        await clock.waitForSleepers(1)
    }

    @Test(
        "a body busy past half of max.poll.interval.ms: the client is asked every interval, fetching is paused, and the next read resumes it in order"
    )
    func busyBody() async throws {
        let fixture = Fixture(partitions: 2, events: 100)
        var configuration = fixture.configuration()
        configuration.properties["max.poll.interval.ms"] = "2000"
        let clock = VirtualClock()
        let (consumer, client) = try fixture.kafka.makeConsumer(configuration, clock: clock)
        let (busy, busySignal) = AsyncStream<Void>.makeStream()
        let (release, releaseSignal) = AsyncStream<Void>.makeStream()
        let reader = Task {
            var seen: [WorkflowEventMessage] = []
            for try await message in consumer.messages(topics: [fixture.topic]) {
                seen.append(message)
                if seen.count == 1 {
                    busySignal.yield()
                    for await _ in release { break }
                }
                if seen.count == 100 { break }
            }
            return seen
        }
        for await _ in busy { break }
        await clock.waitForSleepers(1)
        let fetchesBefore = client.fetchCount
        // Busy for 0.9 s: asked about every 100 ms, not paused yet.
        for _ in 0..<9 { await tick(clock) }
        #expect(client.paused.isEmpty, "paused after \(clock.elapsed): \(client.paused)")
        // Past 1 s, half of max.poll.interval.ms: every partition is paused, the asking goes on.
        for _ in 0..<3 { await tick(clock) }
        #expect(client.paused == Set(fixture.allPartitions), "paused after \(clock.elapsed): \(client.paused)")
        let asked = client.fetchCount - fetchesBefore
        #expect(asked >= 8, "the client was asked \(asked) times in \(clock.elapsed)")
        releaseSignal.yield()
        let seen = try await reader.value
        #expect(client.paused.isEmpty, "still paused after the body went on: \(client.paused)")
        for (partition, offsets) in offsetsByPartition(seen) {
            #expect(offsets == Array(0..<50), "partition \(partition) delivered \(offsets)")
        }
        await consumer.close()
        fixture.expectNoMessageLeaked()
    }
}
