import Foundation
import Synchronization
import Testing
import WorkflowEventsTesting

@testable import WorkflowEvents

/// The idle timeouts end a reader only once it has read everything its partitions held: a
/// gap between events longer than the timeout while events wait is not idleness. On a
/// virtual clock: the gaps take no time.
@Suite("Idle timeouts count only once caught up, on the in-memory client", .timeLimit(.minutes(1)))
struct IdleTimeoutTests {
    /// The longest time between two consecutive instants.
    func longestGap(_ instants: [ContinuousClock.Instant]) -> Duration {
        zip(instants, instants.dropFirst()).map { $1 - $0 }.max() ?? .zero
    }

    @Test("consumeEvents reads on through gaps longer than its timeout while events wait, then ends once idle")
    func gapsWhileBehind() async throws {
        let fixture = Fixture(partitions: 1, events: 6)
        // One event every eight fetches: gaps of several fetch waits.
        fixture.kafka.drip(every: 8)
        let clock = VirtualClock()
        let (consumer, _) = try fixture.consumer(clock: clock)
        var seen: [ContinuousClock.Instant] = []
        let handled = try await consumer.consumeEvents(topics: [fixture.topic], timeout: .milliseconds(200)) { _ in
            seen.append(clock.now)
        }
        await consumer.close()
        #expect(handled == 6, "handled \(handled) of 6 events: the timeout ended the call while events waited")
        #expect(longestGap(seen) > .milliseconds(200), "the longest gap between events was \(longestGap(seen))")
        #expect(fixture.committed == [fixture.partition(0): 6])
        fixture.expectNoMessageLeaked()
    }

    @Test("a stream's idleTimeout reads on through gaps while events wait")
    func streamGapsWhileBehind() async throws {
        let fixture = Fixture(partitions: 1, events: 6)
        fixture.kafka.drip(every: 8)
        let clock = VirtualClock()
        let (consumer, _) = try fixture.consumer(clock: clock)
        var seen: [ContinuousClock.Instant] = []
        var offsets: [Int64] = []
        for try await message in consumer.messages(topics: [fixture.topic], idleTimeout: .milliseconds(200)) {
            seen.append(clock.now)
            offsets.append(message.offset)
        }
        await consumer.close()
        #expect(offsets == Array(0..<6), "read \(offsets) before the stream ended")
        #expect(longestGap(seen) > .milliseconds(200), "the longest gap between events was \(longestGap(seen))")
        fixture.expectNoMessageLeaked()
    }

    @Test("the idle timeout ends a caught-up reader after exactly its time without an event")
    func idleWhenCaughtUp() async throws {
        let fixture = Fixture(partitions: 2, events: 10)
        let clock = VirtualClock()
        let (consumer, _) = try fixture.consumer(clock: clock)
        var last: ContinuousClock.Instant?
        let handled = try await consumer.consumeEvents(topics: [fixture.topic], timeout: .seconds(30)) { _ in last = clock.now }
        let ended = clock.now
        await consumer.close()
        #expect(handled == 10)
        let idle = ended - (last ?? ended)
        // Ends after the timeout, and within a fetch wait and the backlog recheck of it.
        #expect(idle >= .seconds(30) && idle <= .seconds(32), "ended \(idle) after the last event")
    }

    @Test("a member behind whose cluster went away throws after behindTimeout, saying how long and how far behind")
    func behindTimeout() async throws {
        let fixture = Fixture(partitions: 1, events: 6)
        var configuration = fixture.configuration()
        configuration.behindTimeout = .seconds(1)
        // One event a fetch: the events after the first are not taken yet when it is handled.
        fixture.kafka.drip(every: 1)
        let clock = VirtualClock()
        let (consumer, _) = try fixture.kafka.makeConsumer(configuration, clock: clock)
        let kafka = fixture.kafka
        var handled = 0
        let error = await #expect(throws: KafkaError.self) {
            try await consumer.consumeEvents(topics: [fixture.topic], timeout: .milliseconds(200)) { _ in
                // The cluster goes away after the first event, with five still unread.
                if handled == 0 { kafka.setUnreachable(true) }
                handled += 1
            }
        }
        await consumer.close()
        #expect(handled < 6, "all \(handled) events were read: nothing was left behind")
        let message = error?.message ?? ""
        #expect(message.contains("no event for ") && message.contains("events behind"), "\(message)")
        // Not before the idle timeout and behindTimeout have both passed.
        #expect(clock.elapsed >= .milliseconds(1_200), "threw after \(clock.elapsed)")
    }
}
