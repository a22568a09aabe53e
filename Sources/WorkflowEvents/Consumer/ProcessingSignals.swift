// What reaches the processing loop, and when: signals, deadlines and the stop flag.

import DequeModule
import Synchronization

/// Signals to the processing loop, from the fetcher, the handlers, librdkafka's rebalance
/// callback, timers and cancellation.
enum ProcessingSignal: Sendable {
    case fetched([RDKafkaMessage], ack: @Sendable () -> Void)
    case fetchFailed(any Error)
    case finished(id: Int, outcome: HandlerOutcome)
    /// `reply` hands over the offsets to commit before the partitions go.
    case revoke([TopicPartition], lost: Bool, reply: @Sendable ([(TopicPartition, Int64)]) -> Void)
    case revocationDeadline(Int)
    case stop
    case drainDeadline
    case giveUp
    /// The fetcher has ended: no batch will come any more.
    case fetcherEnded
}

/// A queue of signals with one waiting reader, which waits whether or not its task is
/// cancelled (the loop must go on draining after cancellation).
final class Mailbox: Sendable {
    private struct State {
        var signals: Deque<ProcessingSignal> = []
        var waiter: CheckedContinuation<ProcessingSignal, Never>?
    }

    private let state = Mutex(State())

    func post(_ signal: ProcessingSignal) {
        let waiter: CheckedContinuation<ProcessingSignal, Never>? = state.withLock { state in
            if let waiter = state.waiter {
                state.waiter = nil
                return waiter
            }
            state.signals.append(signal)
            return nil
        }
        waiter?.resume(returning: signal)
    }

    func next() async -> ProcessingSignal {
        await withCheckedContinuation { continuation in
            let ready: ProcessingSignal? = state.withLock { state in
                if let signal = state.signals.popFirst() { return signal }
                state.waiter = continuation
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }

}

/// Signals the processing loop asks for at a later time (deadlines), served by one task for
/// all of them.
final class ProcessingTimers: Sendable {
    private let deadlines = Mutex<[(at: ContinuousClock.Instant, signal: ProcessingSignal)]>([])
    /// How late a deadline may be served.
    static let resolution = Duration.milliseconds(100)

    func schedule(_ signal: ProcessingSignal, after delay: Duration) {
        deadlines.withLock { $0.append((ContinuousClock.now.advanced(by: delay), signal)) }
    }

    /// Posts each signal to `mailbox` once its deadline has come, until the calling task is
    /// cancelled.
    func serve(_ mailbox: Mailbox) async {
        while !Task.isCancelled {
            let now = ContinuousClock.now
            let (due, next) = deadlines.withLock { deadlines in
                let due = deadlines.filter { $0.at <= now }.map(\.signal)
                deadlines.removeAll { $0.at <= now }
                return (due, deadlines.map(\.at).min())
            }
            for signal in due { mailbox.post(signal) }
            let wait = next.map { min(Self.resolution, $0 - now) } ?? Self.resolution
            try? await Task.sleep(for: max(.milliseconds(1), wait))
        }
    }
}

/// A flag one task sets and another reads.
final class StopFlag: Sendable {
    private let value = Atomic<Bool>(false)
    var isSet: Bool { value.load(ordering: .acquiring) }
    func set() { value.store(true, ordering: .releasing) }
    func clear() { value.store(false, ordering: .releasing) }
}
