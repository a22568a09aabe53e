import Synchronization

@testable import WorkflowEvents

/// A clock for the consumer's timers that moves only when told to: by `advance`, or by the
/// in-memory client when a fetch finds nothing to hand out (it moves the clock to the end of
/// the fetch's wait). Time-bound behaviour (idle timeouts, `behindTimeout`, the keep-alive,
/// retry backoff) runs at once, and the same way on every run.
final class VirtualClock: Sendable {
    private struct Sleeper {
        let until: ContinuousClock.Instant
        let continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var elapsed = Duration.zero
        var sleepers: [Int: Sleeper] = [:]
        var cancelled: Set<Int> = []
        var nextID = 0
        /// Waiting for a number of sleepers.
        var watchers: [(count: Int, continuation: CheckedContinuation<Void, Never>)] = []

        /// Takes the watchers whose number of sleepers is reached.
        mutating func takeSatisfiedWatchers() -> [CheckedContinuation<Void, Never>] {
            let satisfied = watchers.filter { $0.count <= sleepers.count }.map(\.continuation)
            watchers.removeAll { $0.count <= sleepers.count }
            return satisfied
        }
    }

    private let start = ContinuousClock.now
    private let state = Mutex(State())

    var now: ContinuousClock.Instant { start.advanced(by: state.withLock { $0.elapsed }) }

    /// How far the clock has moved.
    var elapsed: Duration { state.withLock { $0.elapsed } }

    var consumerClock: ConsumerClock {
        ConsumerClock(now: { self.now }, sleepUntil: { try await self.sleep(until: $0) })
    }

    /// Returns once `count` tasks sleep on the clock.
    func waitForSleepers(_ count: Int) async {
        await withCheckedContinuation { continuation in
            let ready = state.withLock { state in
                guard state.sleepers.count < count else { return true }
                state.watchers.append((count, continuation))
                return false
            }
            if ready { continuation.resume() }
        }
    }

    func advance(by duration: Duration) {
        advance(to: now.advanced(by: duration))
    }

    /// Moves the clock to `instant` (never back) and wakes the sleepers due by then.
    func advance(to instant: ContinuousClock.Instant) {
        let due = state.withLock { state -> [CheckedContinuation<Void, any Error>] in
            state.elapsed = max(state.elapsed, instant - start)
            let now = start.advanced(by: state.elapsed)
            let ids = state.sleepers.filter { $0.value.until <= now }.map(\.key)
            return ids.compactMap { state.sleepers.removeValue(forKey: $0)?.continuation }
        }
        for continuation in due { continuation.resume() }
    }

    func sleep(until instant: ContinuousClock.Instant) async throws {
        let id = state.withLock { state in
            state.nextID += 1
            return state.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let (resume, watchers) = state.withLock { state -> (Result<Void, any Error>?, [CheckedContinuation<Void, Never>]) in
                    if state.cancelled.remove(id) != nil { return (.failure(CancellationError()), []) }
                    if instant <= start.advanced(by: state.elapsed) { return (.success(()), []) }
                    state.sleepers[id] = Sleeper(until: instant, continuation: continuation)
                    return (nil, state.takeSatisfiedWatchers())
                }
                for watcher in watchers { watcher.resume() }
                if let resume { continuation.resume(with: resume) }
            }
        } onCancel: {
            let sleeper = state.withLock { state in
                guard let sleeper = state.sleepers.removeValue(forKey: id) else {
                    state.cancelled.insert(id)
                    return nil as Sleeper?
                }
                return sleeper
            }
            sleeper?.continuation.resume(throwing: CancellationError())
        }
    }
}
