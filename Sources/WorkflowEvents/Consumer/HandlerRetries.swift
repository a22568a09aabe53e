// Calling a handler under a retry policy, for consumeEvents, serve and process.

/// How a handler call under a retry policy ended.
enum HandlerOutcome: Sendable {
    case succeeded
    /// Failed on every attempt; `error` is the last one.
    case failed(any Error)
    /// Ended by its task's cancellation (a throw while the calling task is cancelled, or
    /// cancelled between attempts): the event is not done. What the handler threw does not
    /// decide it.
    case abandoned
}

/// Calls `body` until it succeeds, at most `policy.attempts` times, waiting the policy's
/// backoff on `clock` in between; `onRetry` hears of each failure that is retried.
nonisolated(nonsending) func callWithRetries(
    _ policy: WorkflowEventConsumer.RetryPolicy, clock: ConsumerClock,
    onRetry: (any Error, Int) async -> Void,
    _ body: () async throws -> Void
) async -> HandlerOutcome {
    var failures = 0
    while true {
        do {
            try await body()
            return .succeeded
        } catch {
            // Ended because its task was cancelled: not finished, so neither retried nor failed.
            // A `CancellationError` thrown while this task is not cancelled (a child task or a
            // timeout inside the handler was cancelled) is a failure like any other.
            if Task.isCancelled { return .abandoned }
            failures += 1
            guard failures < policy.attempts else { return .failed(error) }
            await onRetry(error, failures)
            try? await clock.sleep(for: policy.backoff(afterFailure: failures))
            if Task.isCancelled { return .abandoned }
        }
    }
}
