// The clock the consumer's timers run on.

/// What the consumer's timers read and wait on: idle timeouts, `maxWait`, `behindTimeout`,
/// the assignment waits, the keep-alive, retry backoff and `process`'s deadlines. The
/// continuous clock in use; in tests, a clock that moves only when told to (or when the
/// in-memory client has nothing to hand out), so that time-bound behaviour is tested
/// without waiting for it.
///
/// Durations that measure work (handler time, close time) read the continuous clock.
struct ConsumerClock: Sendable {
    let now: @Sendable () -> ContinuousClock.Instant
    /// Suspends until the instant, or throws `CancellationError` when the task is cancelled.
    let sleepUntil: @Sendable (ContinuousClock.Instant) async throws -> Void

    static let continuous = ConsumerClock(
        now: { ContinuousClock.now },
        sleepUntil: { try await Task.sleep(until: $0, clock: .continuous) })

    func sleep(for duration: Duration) async throws {
        try await sleepUntil(now().advanced(by: duration))
    }
}
