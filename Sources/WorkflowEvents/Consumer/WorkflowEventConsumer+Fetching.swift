// Taking messages from librdkafka: fills, the read-ahead and the busy-reader keep-alive.

import Foundation
import Logging
import Metrics
import Synchronization
import Tracing

extension WorkflowEventConsumer {
    /// What a fill leaves running for the next one: nothing, a batch taken ahead, or a
    /// batch taken and validated ahead.
    enum ReadAhead { case none, raw, decoded }

    /// Waits until librdkafka has messages (or the deadline, or a wake-up) and moves them
    /// into the buffer. One fetch runs at a time; other callers wait for it. With
    /// `readAhead`, the next batch is then taken on the poll queue while the reader works
    /// through this one.
    func fill(until deadline: ContinuousClock.Instant?, readAhead mode: ReadAhead = .none) async throws {
        let maximum = configuration.fetchBatchSize
        var batch: [FetchedMessage]
        switch machine.acquireFetchPath() {
        case .wait:
            // Another caller fetches: its batch is what this one waited for.
            await withCheckedContinuation { machine.wait($0) }
            return
        case .takeReadAhead(let pending):
            batch = await pending.value
        case .fetch:
            batch = []
        }
        if machine.liftKeepAlivePause() {
            client.setPaused(false, context.assignment.subtracting(userPaused).sorted())
        }
        lastFetch = clock.now()
        if batch.isEmpty { batch = await client.fetchAvailable(maximum: maximum) }
        if batch.isEmpty {
            var wait = Duration.seconds(1)
            if let deadline { wait = min(wait, max(.zero, deadline - clock.now())) }
            let client = self.client
            batch = await withTaskCancellationHandler {
                await client.fetch(timeout: wait, maximum: maximum)
            } onCancel: {
                client.wakeUp()
            }
        }
        buffer.append(batch)
        var next: Task<[FetchedMessage], Never>?
        if mode != .none && !batch.isEmpty && machine.isOpen {
            let client = self.client
            let decode = mode == .decoded
            next = Task.detached { await client.fetchAhead(maximum: maximum, decode: decode) }
        }
        releaseFetchPath(readingAhead: next)
        dropRevokedPartitions()
    }

    /// Takes the fetch path, waiting for its owner to let go, and moves a batch read ahead
    /// into the buffer. The caller owns the path until `releaseFetchPath()`.
    func acquireFetchPath() async {
        while true {
            switch machine.acquireFetchPath() {
            case .wait:
                await withCheckedContinuation { machine.wait($0) }
            case .takeReadAhead(let pending):
                buffer.append(await pending.value)
                dropRevokedPartitions()
                return
            case .fetch:
                return
            }
        }
    }

    /// Lets go of the fetch path (leaving a batch being read ahead, if given) and resumes
    /// the callers waiting for it.
    func releaseFetchPath(readingAhead pending: Task<[FetchedMessage], Never>? = nil) {
        lastFetch = clock.now()
        for waiter in machine.releaseFetchPath(readingAhead: pending) { waiter.resume() }
    }

    /// Moves a batch taken ahead into the buffer: before the buffer is searched or cut.
    /// Nothing to do while another caller owns the fetch path (it takes that batch).
    func absorbReadAhead() async {
        guard let pending = machine.takeReadAheadIfIdle() else { return }
        buffer.append(await pending.value)
        releaseFetchPath()
        dropRevokedPartitions()
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
        reading.batch?.withFinished { finish($0) }
        guard subscription != nil, !machine.isFetchPathOwned else { return }
        // A batch taken ahead came from librdkafka before anything taken now.
        await absorbReadAhead()
        guard machine.isOpen, !machine.isFetchPathOwned, !reading.isProcessing else { return }
        let now = clock.now()
        // A reader that took an event from its batch since the last look is not busy.
        if let handedOut = reading.batch?.progress.handedOut, handedOut != lastHandedOut {
            lastHandedOut = handedOut
            lastRead = now
        }
        guard now - lastFetch >= Self.serviceInterval else { return }
        if now - lastRead >= pauseAfter {
            if machine.pauseForKeepAlive() {
                logger.debug("the reader is busy: fetching paused, group membership kept alive")
            }
            // Again each time: a rebalance meanwhile may have assigned new partitions.
            client.setPaused(true, context.assignment.sorted())
        }
        lastFetch = now
        // Owned while librdkafka is asked, so that no fill takes later messages meanwhile.
        await acquireFetchPath()
        buffer.append(await client.fetchAvailable(maximum: 1))
        releaseFetchPath()
        dropRevokedPartitions()
    }

    /// After a rebalance, messages of partitions this member no longer owns are dropped:
    /// their new owner reads them from the committed offset.
    func dropRevokedPartitions() {
        guard configuration.groupID != nil else { return }
        let (generation, assignment) = context.state.withLock { ($0.generation, $0.assignment) }
        guard generation != seenGeneration else { return }
        seenGeneration = generation
        buffer.drop { !assignment.contains($0) }
        for partition in heldWhilePaused.keys where !assignment.contains(partition) {
            for message in heldWhilePaused.removeValue(forKey: partition) ?? [] { message.destroy() }
        }
    }
}
