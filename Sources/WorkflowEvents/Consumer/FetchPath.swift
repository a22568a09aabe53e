/// Who may move librdkafka's position, as one value: each transition changes the state and
/// returns what the ``Fetcher`` must do (resume waiters, await a batch read ahead). Generic
/// over the waiter and the pending read-ahead so that it is tested without a cluster or
/// continuations.
///
/// - The path: idle; a batch being read ahead (taken and validated on the poll queue while
///   the reader works); or owned by one caller (a fetch, the wait for a read-ahead, a seek
///   moving a position, an assignment, the close), with the callers waiting for it. One
///   owner at a time: a fetch from the keep-alive never overtakes a seek or a fetch in flight.
/// - The keep-alive's pause: whether it paused the assignment while the reader was busy.
struct FetchPath<Waiter, ReadAhead> {
    enum State {
        case idle
        case readingAhead(ReadAhead)
        case owned(waiters: [Waiter])
    }

    private(set) var state = State.idle
    private(set) var pausedForKeepAlive = false

    /// Whether a caller owns the path.
    var isOwned: Bool {
        if case .owned = state { return true }
        return false
    }

    /// The batch being read ahead, for a consumer released without close.
    var pendingReadAhead: ReadAhead? {
        if case .readingAhead(let pending) = state { return pending }
        return nil
    }

    enum AcquireAction {
        /// The path is the caller's: fetch.
        case fetch
        /// The path is the caller's: take this batch read ahead first.
        case takeReadAhead(ReadAhead)
        /// Another caller owns the path: wait (`wait(_:)`) until it lets go.
        case wait
    }

    /// Asks for the path.
    mutating func acquire() -> AcquireAction {
        switch state {
        case .idle:
            state = .owned(waiters: [])
            return .fetch
        case .readingAhead(let pending):
            state = .owned(waiters: [])
            return .takeReadAhead(pending)
        case .owned:
            return .wait
        }
    }

    /// Takes the batch read ahead, if there is one and nobody owns the path: the caller then
    /// owns it until `release()`.
    mutating func takeReadAheadIfIdle() -> ReadAhead? {
        guard case .readingAhead(let pending) = state else { return nil }
        state = .owned(waiters: [])
        return pending
    }

    /// Waits for the owner of the path to let go. Only while it is owned.
    mutating func wait(_ waiter: Waiter) {
        guard case .owned(var waiters) = state else {
            preconditionFailure("waiting for a fetch path nobody owns")
        }
        waiters.append(waiter)
        state = .owned(waiters: waiters)
    }

    /// The owner lets go, leaving a batch being read ahead or nothing. Returns the waiters
    /// to resume.
    mutating func release(readingAhead pending: ReadAhead? = nil) -> [Waiter] {
        guard case .owned(let waiters) = state else {
            preconditionFailure("releasing a fetch path nobody owns")
        }
        state = pending.map { .readingAhead($0) } ?? .idle
        return waiters
    }

    /// The keep-alive pauses the assignment; returns whether it was not paused yet.
    mutating func pauseForKeepAlive() -> Bool {
        defer { pausedForKeepAlive = true }
        return !pausedForKeepAlive
    }

    /// Fetching resumes; returns whether the keep-alive's pause must be lifted.
    mutating func liftKeepAlivePause() -> Bool {
        defer { pausedForKeepAlive = false }
        return pausedForKeepAlive
    }
}
