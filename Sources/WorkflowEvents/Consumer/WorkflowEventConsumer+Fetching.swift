// Asking for messages: the readers' fills and the busy-reader keep-alive (both through the
// fetcher).

import Foundation
import Logging
import Metrics
import Synchronization
import Tracing

extension WorkflowEventConsumer {
    /// Waits until librdkafka has messages (or the deadline, or a wake-up) and moves them
    /// into the fetcher's buffer; with `readAhead`, the next batch is then taken on the poll
    /// queue while the reader works through this one (not once the close has begun).
    func fill(until deadline: ContinuousClock.Instant?, readAhead mode: Fetcher.ReadAhead = .none) async throws {
        await fetcher.fill(until: deadline, readAhead: mode) { machine.isOpen }
    }

    /// `process`'s next batch, validated on the poll queue: it waits up to 100 ms, so that
    /// the fetching task sees its stop soon.
    func fetchForProcess() async -> [FetchedMessage] {
        await fetcher.fetchForProcess(timeout: .milliseconds(100))
    }

    /// librdkafka runs rebalance callbacks only inside a consume call, and leaves the group
    /// when it is not asked for messages for `max.poll.interval.ms`. A loop body that is
    /// slow but alive must neither hold up a rebalance nor cost the member its partitions:
    /// while the reader is busy, librdkafka is asked every 100 ms (taking at most one
    /// message), and after half of `max.poll.interval.ms` the assignment is paused (which
    /// drops librdkafka's prefetched messages, bounding memory) while the polling goes on.
    /// The next read resumes fetching where it stopped.
    func startKeepAlive() {
        let pauseAfter = Self.maxPollInterval(configuration.properties) / 2
        let clock = self.clock
        keepAlive = Task { [weak self] in
            while !Task.isCancelled {
                try? await clock.sleep(for: Self.serviceInterval)
                // Cancelled while asleep: another reader (process) may own the fetching now.
                guard !Task.isCancelled, let self else { return }
                await self.serviceWhileBusy(pauseAfter: pauseAfter)
            }
        }
    }

    static func maxPollInterval(_ properties: [String: String]) -> Duration {
        let milliseconds = properties["max.poll.interval.ms"].flatMap { Int64($0) } ?? 300_000
        return .milliseconds(max(1, milliseconds))
    }

    /// Asks librdkafka for at most one message if it has not been asked for 100 ms, which
    /// serves its callbacks; pauses the assignment when the reader has been busy for
    /// `pauseAfter`.
    func serviceWhileBusy(pauseAfter: Duration) async {
        // `process` fetches for itself: a message taken here would never reach its handlers,
        // and its offsets would be stored past it.
        guard machine.isOpen, !reading.isProcessing else { return }
        // The events the reader finished reach librdkafka's auto-commit within this interval,
        // also while the reader is still working through its batch.
        reading.batch?.withFinished { finish(lastOffsets: $0) }
        guard subscription != nil, !fetcher.isPathOwned else { return }
        // A batch taken ahead came from librdkafka before anything taken now.
        await fetcher.absorbReadAhead()
        guard machine.isOpen, !fetcher.isPathOwned, !reading.isProcessing else { return }
        let now = clock.now()
        // A reader that took an event from its batch since the last look is not busy.
        if let handedOut = reading.batch?.progress.handedOut, handedOut != lastHandedOut {
            lastHandedOut = handedOut
            lastRead = now
        }
        guard now - fetcher.lastFetch >= Self.serviceInterval else { return }
        if await fetcher.serveWhileBusy(pause: now - lastRead >= pauseAfter) {
            logger.debug("the reader is busy: fetching paused, group membership kept alive")
        }
    }
}
