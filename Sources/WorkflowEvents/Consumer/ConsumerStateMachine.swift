/// The consumer's lifecycle, as one value: each transition changes the state and returns
/// what the actor must do (resume waiters, close). Generic over the waiter so that it is
/// tested without continuations. The fetch path is the ``Fetcher``'s (see ``FetchPath``).
///
/// - Lifecycle: open, closing (with the callers waiting for the close to end), closed.
/// - Subscribing: one subscription is made at a time, the other callers waiting for it.
struct ConsumerStateMachine<Waiter> {
    enum Lifecycle {
        case open
        case closing(waiters: [Waiter])
        case closed
    }

    private(set) var lifecycle = Lifecycle.open
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

extension ConsumerStateMachine: Sendable where Waiter: Sendable {}
extension ConsumerStateMachine.Lifecycle: Sendable where Waiter: Sendable {}
