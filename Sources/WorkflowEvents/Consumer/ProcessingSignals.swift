// What reaches the processing loop, and when: signals, deadlines and the stop flag.

import DequeModule
import Synchronization

/// Signals to the processing loop, from the fetcher, the handlers, librdkafka's rebalance
/// callback, timers and cancellation.
enum ProcessingSignal: Sendable {
    case fetched([FetchedMessage], ack: @Sendable () -> Void)
    case fetchFailed(any Error)
    /// Events a worker ran or skipped, in its order.
    case finished([Completion])
    /// A worker has run (or skipped) every event it was given.
    case workerEnded
    /// `reply` hands over the offsets to commit before the partitions go.
    case revoke([TopicPartition], lost: Bool, reply: RevocationReply)
    case revocationDeadline(Int)
    case stop
    case drainDeadline
    case giveUp
    /// The fetcher has ended: no batch will come any more.
    case fetcherEnded
}

/// How a worker ended an event it was given.
struct Completion: Sendable {
    let id: Int
    let outcome: HandlerOutcome
    /// False when the worker skipped it: the loop began draining, the partition was revoked,
    /// or the worker was cancelled before the event's turn.
    let started: Bool
    /// The event, when its handler failed (for the failure's log line): the loop keeps no
    /// copy of an event given to a worker.
    var failedEvent: WorkflowEvent? = nil
}

/// A queue of signals with one waiting reader, which waits whether or not its task is
/// cancelled (the loop must go on draining after cancellation).
final class Mailbox: Sendable {
    private struct State {
        var signals: Deque<ProcessingSignal> = []
        var waiter: CheckedContinuation<ProcessingSignal, Never>?
        /// The loop has ended: nothing reads the signals any more.
        var closed = false
    }

    private let state = Mutex(State())

    /// Posts `signal`; false when the loop has ended, and nothing will read it.
    @discardableResult
    func post(_ signal: ProcessingSignal) -> Bool {
        let (posted, waiter) = state.withLock { state -> (Bool, CheckedContinuation<ProcessingSignal, Never>?) in
            guard !state.closed else { return (false, nil) }
            if let waiter = state.waiter {
                state.waiter = nil
                return (true, waiter)
            }
            state.signals.append(signal)
            return (true, nil)
        }
        waiter?.resume(returning: signal)
        return posted
    }

    /// The loop has ended: later posts are refused, and the signals left are returned.
    func close() -> [ProcessingSignal] {
        state.withLock { state in
            state.closed = true
            defer { state.signals = [] }
            return Array(state.signals)
        }
    }

    /// Whether a signal waits: the loop does its bookkeeping once none does.
    var hasSignals: Bool { state.withLock { !$0.signals.isEmpty } }

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
    private let clock: ConsumerClock
    /// How late a deadline may be served.
    static let resolution = Duration.milliseconds(100)

    init(clock: ConsumerClock) { self.clock = clock }

    func schedule(_ signal: ProcessingSignal, after delay: Duration) {
        deadlines.withLock { $0.append((clock.now().advanced(by: delay), signal)) }
    }

    /// Posts each signal to `mailbox` once its deadline has come, until the calling task is
    /// cancelled.
    func serve(_ mailbox: Mailbox) async {
        while !Task.isCancelled {
            let now = clock.now()
            let (due, next) = deadlines.withLock { deadlines in
                let due = deadlines.filter { $0.at <= now }.map(\.signal)
                deadlines.removeAll { $0.at <= now }
                return (due, deadlines.map(\.at).min())
            }
            for signal in due { mailbox.post(signal) }
            let wait = next.map { min(Self.resolution, $0 - now) } ?? Self.resolution
            try? await clock.sleep(for: max(.milliseconds(1), wait))
        }
    }
}

/// Events given to a worker that it must skip if it has not started them, shared by the
/// loop (which withdraws them) and the workers.
final class WithdrawnEvents: Sendable {
    private let ids = Mutex<Set<Int>>([])
    /// Whether `ids` holds any, set under its lock: most events are never withdrawn, and
    /// are checked without the lock.
    private let holdsAny = Atomic<Bool>(false)

    func withdraw(_ withdrawn: [Int]) {
        guard !withdrawn.isEmpty else { return }
        ids.withLock {
            $0.formUnion(withdrawn)
            holdsAny.store(true, ordering: .releasing)
        }
    }

    /// Whether the event `id` was withdrawn; it is forgotten either way.
    func take(_ id: Int) -> Bool {
        guard holdsAny.load(ordering: .acquiring) else { return false }
        return ids.withLock {
            let removed = $0.remove(id) != nil
            if $0.isEmpty { holdsAny.store(false, ordering: .releasing) }
            return removed
        }
    }
}

/// A flag one task sets and another reads, or waits for.
final class StopFlag: Sendable {
    private let value = Atomic<Bool>(false)
    /// Tasks waiting for the flag, by id.
    private let waiters = Mutex<(next: Int, waiting: [Int: CheckedContinuation<Void, Never>])>((0, [:]))

    var isSet: Bool { value.load(ordering: .acquiring) }

    func set() {
        value.store(true, ordering: .releasing)
        let waiting = waiters.withLock { state in
            defer { state.waiting = [:] }
            return Array(state.waiting.values)
        }
        for waiter in waiting { waiter.resume() }
    }

    func clear() { value.store(false, ordering: .releasing) }

    /// Sleeps on `clock` for `duration`; returns early when the flag is set or the task is
    /// cancelled.
    func sleep(for duration: Duration, on clock: ConsumerClock) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { try? await clock.sleep(for: duration) }
            group.addTask { await self.waitUntilSet() }
            await group.next()
            group.cancelAll()
        }
    }

    /// Returns once the flag is set, or the task is cancelled.
    private func waitUntilSet() async {
        let id = waiters.withLock { state in
            defer { state.next += 1 }
            return state.next
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let resumeNow = waiters.withLock { state in
                    if isSet || Task.isCancelled { return true }
                    state.waiting[id] = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            waiters.withLock { $0.waiting.removeValue(forKey: id) }?.resume()
        }
    }
}
