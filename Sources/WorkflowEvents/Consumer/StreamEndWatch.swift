// How a stream's iteration ended: cancelled, or let go of.

import Synchronization

/// How the iteration of a stream built with `AsyncThrowingStream(unfolding:)` ended.
enum StreamEnd: Equatable, Sendable {
    /// The iterating task was cancelled.
    case cancelled
    /// The stream was let go of: a `break`, a thrown error, the end of the stream, or a
    /// stream dropped without being iterated.
    case released
}

/// Captured by a stream's unfolding closure, and released with it: tells, once, how the
/// iteration ended.
///
/// `AsyncThrowingStream(unfolding:)` releases its closure in three cases: the closure
/// returned nil (the stream ended); the stream's cancellation handler ran (the iterating
/// task was cancelled inside `next()`, or entered it cancelled); or the stream itself was
/// released. The cancellation handler runs on the cancelling task when the cancellation
/// lands during `next()`, and there `Task.isCancelled` says nothing about the iterating
/// task. What tells the cases apart is whether the stream (its shared context, which the
/// iterator holds during `next()`) is still alive when the closure goes: the watch keeps a
/// weak reference to it. Alive and not ended: cancelled.
final class StreamEndWatch: Sendable {
    private let onEnd: @Sendable (StreamEnd) -> Void
    private let sawCancellation = Atomic<Bool>(false)
    private let ended = Atomic<Bool>(false)
    /// The stream's context; written once, before the stream is handed out.
    private nonisolated(unsafe) weak var iteration: AnyObject?

    init(onEnd: @escaping @Sendable (StreamEnd) -> Void) {
        self.onEnd = onEnd
    }

    /// Keeps a weak reference to `stream`'s context. False if the stream's layout has none
    /// (the watch then tells a cancellation only from the iterating task).
    @discardableResult
    func observe<Element>(_ stream: AsyncThrowingStream<Element, any Error>) -> Bool {
        for child in Mirror(reflecting: stream).children where child.label == "context" {
            guard Mirror(reflecting: child.value).displayStyle == .class else { return false }
            iteration = child.value as AnyObject
            return true
        }
        return false
    }

    /// Called by the stream's closure before it returns.
    func check() {
        if Task.isCancelled { sawCancellation.store(true, ordering: .releasing) }
    }

    /// Called by the stream's closure before it returns nil.
    func noteEnded() {
        ended.store(true, ordering: .releasing)
    }

    deinit {
        let cancelled =
            Task.isCancelled || sawCancellation.load(ordering: .acquiring)
            || (iteration != nil && !ended.load(ordering: .acquiring))
        onEnd(cancelled ? .cancelled : .released)
    }
}

extension AsyncThrowingStream where Failure == any Error {
    /// A stream whose elements `take` gives at once when it has one; otherwise `refill` is
    /// awaited (false ends the stream) and `take` asked again. It tells `onEnd`, once, how its
    /// iteration ended. An element at hand costs no further async call.
    static func watched(
        onEnd: @escaping @Sendable (StreamEnd) -> Void, take: @escaping @Sendable () -> Element?,
        refill: @escaping @Sendable () async throws -> Bool
    ) -> Self {
        let watch = StreamEndWatch(onEnd: onEnd)
        let stream = AsyncThrowingStream(unfolding: {
            defer { watch.check() }
            if let element = take() { return element }
            while try await refill() {
                if let element = take() { return element }
            }
            watch.noteEnded()
            return nil
        })
        watch.observe(stream)
        return stream
    }
}
