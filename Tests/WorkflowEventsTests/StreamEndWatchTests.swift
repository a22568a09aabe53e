import Synchronization
import TestSupport
import Testing

@testable import WorkflowEvents

/// How a stream's iteration ended, without a cluster: a cancelled iterating task must be
/// told from a loop that was left (which leaves the consumer open), wherever the
/// cancellation lands.
@Suite("Stream end watch")
struct StreamEndWatchTests {
    /// What the watch reported, once.
    final class Outcome: Sendable {
        let ends = Mutex<[StreamEnd]>([])
        func record(_ end: StreamEnd) { ends.withLock { $0.append(end) } }
        var all: [StreamEnd] { ends.withLock { $0 } }
    }

    final class Counter: Sendable {
        let value = Atomic<Int>(0)
    }

    /// An endless stream of numbers (or `count` of them), counting what it produced.
    func numbers(
        _ outcome: Outcome, produced: Counter = Counter(), count: Int = .max
    ) -> AsyncThrowingStream<Int, any Error> {
        .watched(
            onEnd: outcome.record,
            take: {
                let next = produced.value.add(1, ordering: .relaxed).newValue
                return next <= count ? next : nil
            },
            refill: {
                await Task.yield()
                return false
            })
    }

    func waitForOutcome(_ outcome: Outcome, round: Int) async throws -> StreamEnd {
        try await waitUntil("round \(round): the watch reports", timeout: .seconds(5)) { !outcome.all.isEmpty }
        let ends = outcome.all
        #expect(ends.count == 1, "round \(round): reported \(ends)")
        return ends[0]
    }

    @Test("a cancelled iteration is reported as cancelled, wherever in next() the cancellation lands (300 times)")
    func cancellationAnywhere() async throws {
        var wrong: [Int] = []
        for round in 0..<300 {
            let outcome = Outcome()
            let stream = numbers(outcome)
            let reading = Task {
                var sum = 0
                for try await number in stream { sum &+= number }
                return sum
            }
            // An empty loop body: the task spends its time inside next(), where the
            // cancellation lands after a random while. About one cancellation in twenty
            // landed where the stream's handler runs on the cancelling task: 300 rounds miss
            // that case with a chance of about 2 in 10 million.
            try await Task.sleep(for: .microseconds(Int64.random(in: 20...300)))
            reading.cancel()
            _ = await reading.result
            if try await waitForOutcome(outcome, round: round) != .cancelled { wrong.append(round) }
        }
        #expect(wrong.isEmpty, "reported as let go of although cancelled in rounds \(wrong)")
    }

    @Test("a loop left with break, a stream that ends, and a stream never iterated are reported as released")
    func released() async throws {
        let broken = Outcome()
        do {
            for try await number in numbers(broken) where number == 10 { break }
        }
        #expect(try await waitForOutcome(broken, round: 0) == .released)

        let ended = Outcome()
        var seen = 0
        for try await _ in numbers(ended, count: 5) { seen += 1 }
        #expect(seen == 5)
        #expect(try await waitForOutcome(ended, round: 1) == .released)

        let unused = Outcome()
        _ = numbers(unused)
        #expect(try await waitForOutcome(unused, round: 2) == .released)
    }

    @Test("a stream iterated by a child task that breaks, and dropped later by its parent, is reported as released")
    func releasedByAnotherTask() async throws {
        let outcome = Outcome()
        do {
            let stream = numbers(outcome)
            let child = Task {
                for try await number in stream where number == 10 { return number }
                return 0
            }
            #expect(try await child.value == 10)
            // The parent still holds the stream.
            #expect(outcome.all.isEmpty)
            withExtendedLifetime(stream) {}
        }
        #expect(try await waitForOutcome(outcome, round: 0) == .released)
    }

    @Test("the watch finds the stream's context, which tells a cancellation seen from the cancelling task")
    func findsTheContext() {
        let watch = StreamEndWatch { _ in }
        let stream = AsyncThrowingStream<Int, any Error>(unfolding: { nil })
        #expect(watch.observe(stream))
    }
}
