/// The consumer's lifecycle and its fetch path, as one value: each transition changes the
/// state and returns what the actor must do (resume waiters, await a batch read ahead,
/// close). Generic over the waiter and the pending read-ahead so that it is tested without
/// a cluster or continuations.
///
/// - Lifecycle: open, closing (with the callers waiting for the close to end), closed.
/// - Fetch path: idle; a batch being read ahead (taken and validated on the poll queue
///   while the reader works); or owned by one caller (a fetch, the wait for a read-ahead,
///   a seek moving a position), with the callers waiting for it. One owner at a time: a
///   fetch from the keep-alive never overtakes a seek or a fetch in flight.
/// - The keep-alive's pause: whether it paused the assignment while the reader was busy.
struct ConsumerStateMachine<Waiter, ReadAhead> {
    enum Lifecycle {
        case open
        case closing(waiters: [Waiter])
        case closed
    }

    enum FetchPath {
        case idle
        case readingAhead(ReadAhead)
        case owned(waiters: [Waiter])
    }

    private(set) var lifecycle = Lifecycle.open
    private(set) var fetchPath = FetchPath.idle
    private(set) var pausedForKeepAlive = false
    /// The callers waiting while a subscription is made, when one is (nil when none is):
    /// one at a time, so that two calls with the same topics never assign twice.
    private(set) var subscribing: [Waiter]?

    var isOpen: Bool {
        if case .open = lifecycle { return true }
        return false
    }

    var isClosed: Bool {
        if case .closed = lifecycle { return true }
        return false
    }

    /// Whether a caller owns the fetch path.
    var isFetchPathOwned: Bool {
        if case .owned = fetchPath { return true }
        return false
    }

    /// The batch being read ahead, for a consumer released without close.
    var pendingReadAhead: ReadAhead? {
        if case .readingAhead(let pending) = fetchPath { return pending }
        return nil
    }

    // MARK: Fetch path

    enum AcquireAction {
        /// The path is the caller's: fetch.
        case fetch
        /// The path is the caller's: take this batch read ahead first.
        case takeReadAhead(ReadAhead)
        /// Another caller owns the path: wait (`wait(_:)`) until it lets go.
        case wait
    }

    /// Asks for the fetch path.
    mutating func acquireFetchPath() -> AcquireAction {
        switch fetchPath {
        case .idle:
            fetchPath = .owned(waiters: [])
            return .fetch
        case .readingAhead(let pending):
            fetchPath = .owned(waiters: [])
            return .takeReadAhead(pending)
        case .owned:
            return .wait
        }
    }

    /// Takes the batch read ahead, if there is one and nobody owns the path: the caller then
    /// owns it until `releaseFetchPath()`.
    mutating func takeReadAheadIfIdle() -> ReadAhead? {
        guard case .readingAhead(let pending) = fetchPath else { return nil }
        fetchPath = .owned(waiters: [])
        return pending
    }

    /// Waits for the owner of the fetch path to let go. Only while it is owned.
    mutating func wait(_ waiter: Waiter) {
        guard case .owned(var waiters) = fetchPath else {
            preconditionFailure("waiting for a fetch path nobody owns")
        }
        waiters.append(waiter)
        fetchPath = .owned(waiters: waiters)
    }

    /// The owner lets go, leaving a batch being read ahead or nothing. Returns the waiters
    /// to resume.
    mutating func releaseFetchPath(readingAhead pending: ReadAhead? = nil) -> [Waiter] {
        guard case .owned(let waiters) = fetchPath else {
            preconditionFailure("releasing a fetch path nobody owns")
        }
        fetchPath = pending.map { .readingAhead($0) } ?? .idle
        return waiters
    }

    // MARK: Subscribing

    /// Asks to make a subscription; false when another one is being made (then `wait`
    /// with `waitForSubscription(_:)`, and ask again).
    mutating func beginSubscribing() -> Bool {
        guard subscribing == nil else { return false }
        subscribing = []
        return true
    }

    mutating func waitForSubscription(_ waiter: Waiter) {
        guard subscribing != nil else { preconditionFailure("waiting for a subscription nobody makes") }
        subscribing!.append(waiter)
    }

    /// The subscription is made, or failed; returns the callers to resume.
    mutating func endSubscribing() -> [Waiter] {
        guard let waiters = subscribing else { preconditionFailure("ending a subscription nobody makes") }
        subscribing = nil
        return waiters
    }

    // MARK: The keep-alive's pause

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

    // MARK: Lifecycle

    enum CloseAction {
        /// The caller closes.
        case close
        /// Another caller is closing: wait (`waitForClose(_:)`) until it has.
        case wait
        case alreadyClosed
    }

    mutating func beginClose() -> CloseAction {
        switch lifecycle {
        case .open:
            lifecycle = .closing(waiters: [])
            return .close
        case .closing:
            return .wait
        case .closed:
            return .alreadyClosed
        }
    }

    mutating func waitForClose(_ waiter: Waiter) {
        guard case .closing(var waiters) = lifecycle else {
            preconditionFailure("waiting for a close that is not under way")
        }
        waiters.append(waiter)
        lifecycle = .closing(waiters: waiters)
    }

    /// The close has ended; returns the callers to resume.
    mutating func closed() -> [Waiter] {
        guard case .closing(let waiters) = lifecycle else {
            preconditionFailure("closed without a close under way")
        }
        lifecycle = .closed
        return waiters
    }
}

extension ConsumerStateMachine: Sendable where Waiter: Sendable, ReadAhead: Sendable {}
extension ConsumerStateMachine.Lifecycle: Sendable where Waiter: Sendable, ReadAhead: Sendable {}
extension ConsumerStateMachine.FetchPath: Sendable where Waiter: Sendable, ReadAhead: Sendable {}
