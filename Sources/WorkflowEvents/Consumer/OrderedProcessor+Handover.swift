// process: what is committed, when partitions pause and resume, how they are handed over, and how it stops.

import CoreMetrics
import DequeModule
import Dispatch
import Foundation
import Logging
import Synchronization

extension OrderedProcessor {
    // MARK: Offsets and flow control

    /// Stores, for each partition, the first offset not finished (when it moved).
    func storeProgress() {
        consumer.trackOffsets { _ in }
    }

    /// Pauses a partition that holds too many unfinished events (every partition when the
    /// total is reached), and resumes it once it holds half as many. Looks at `touched` only,
    /// unless the total crossed its limit.
    func applyFlowControl(_ touched: some Sequence<TopicPartition>) {
        guard !draining else { return }
        // Paused at a limit, resumed at half of it: resuming drops nothing, but each pause
        // drops librdkafka's prefetched messages, so pausing at every event over the limit
        // would fetch the same messages again and again.
        let generation = consumer.assignmentGeneration
        let full = totalFull ? inMemory > limits.maxBufferedEvents / 2 : inMemory >= limits.maxBufferedEvents
        let partitions: [TopicPartition] = full != totalFull ? Array(consumer.context.assignment) : Array(touched)
        totalFull = full
        var pause: [TopicPartition] = []
        var resume: [TopicPartition] = []
        for partition in partitions {
            guard var state = progress[partition] else {
                // Not read from yet: paused with the others while the total is full, or its
                // messages would keep coming until its first batch is seen.
                if full, !pausedUnseen.contains(partition) {
                    pausedUnseen.insert(partition)
                    pause.append(partition)
                } else if !full, pausedUnseen.remove(partition) != nil {
                    resume.append(partition)
                }
                continue
            }
            if pausedUnseen.remove(partition) != nil {
                state.paused = true
                progress[partition] = state
            }
            let perPartition = limits.maxBufferedEventsPerPartition
            let shouldPause = full || (state.paused ? state.inMemory > perPartition / 2 : state.inMemory >= perPartition)
            if shouldPause != state.paused {
                state.paused = shouldPause
                progress[partition] = state
                if shouldPause { pause.append(partition) } else { resume.append(partition) }
            }
        }
        client.setPaused(true, pause, decidedAt: generation)
        client.setPaused(false, resume)
    }

    // MARK: Revocation

    func revoke(
        _ partitions: [TopicPartition], lost: Bool, reply: RevocationReply
    ) {
        let revoked = Set(partitions)
        // Events not started are dropped: the next owner reads them from the commit.
        for (key, queue) in pending {
            var kept = queue
            kept.removeAll { item in
                guard revoked.contains(item.partition) else { return false }
                item.message.destroy()
                inMemory -= 1
                progress[item.partition]?.inMemory -= 1
                return true
            }
            pending[key] = kept.isEmpty ? nil : kept
        }
        // Given to a worker and not started: skipped.
        let withdrawing = running.filter { revoked.contains($0.value.partition) }.map(\.key)
        withdrawn.withdraw(withdrawing)
        revocationTokens += 1
        var epochs: [TopicPartition: Int] = [:]
        for partition in revoked { epochs[partition] = progress[partition]?.epoch }
        let revocation = Revocation(token: revocationTokens, partitions: lost ? [] : revoked, reply: reply, epochs: epochs)
        if lost {
            // Lost partitions cannot be committed: their handlers' results no longer count.
            for partition in revoked where progress[partition]?.epoch == epochs[partition] { progress[partition] = nil }
            if reply.claim() {
                consumer.recordOffsets { $0.forget(revoked) }
                reply.send([])
            }
            return
        }
        revocations.append(revocation)
        timers.schedule(.revocationDeadline(revocation.token), after: limits.drainTimeout)
        completeRevocation(token: revocation.token, timedOut: false)
    }

    /// Hands the partitions over once their handlers in flight have ended, or at the
    /// deadline: stores their finished run (librdkafka commits it as it unassigns them).
    func completeRevocation(token: Int, timedOut: Bool) {
        guard let index = revocations.firstIndex(where: { $0.token == token }) else { return }
        let revocation = revocations[index]
        let busy = running.values.contains { revocation.partitions.contains($0.partition) }
        guard !busy || timedOut else { return }
        revocations.remove(at: index)
        // What the loop holds of these partitions from before the revocation ends; a later
        // assignment of them (a new epoch) is not touched.
        for partition in revocation.partitions where progress[partition]?.epoch == revocation.epochs[partition] {
            progress[partition] = nil
        }
        guard revocation.reply.claim() else {
            // The rebalance stopped waiting and went on: librdkafka handed the partitions
            // over without this commit, and the offsets it tracked were forgotten then.
            logger.warning(
                "the rebalance did not wait for process to hand partitions over; their next owner reads again what was handled since the last commit",
                metadata: ["partitions": "\(revocation.partitions.sorted())"])
            return
        }
        if busy {
            logger.info("handing over partitions while their handlers still run", metadata: ["partitions": "\(revocation.partitions.sorted())"])
        }
        storeProgress()
        let entries = consumer.recordOffsets { $0.revoke(revocation.partitions) }
        revocation.reply.send(entries)
    }

    // MARK: Stopping

    func beginDraining() {
        guard !draining else { return }
        draining = true
        stopStarting.set()
        stopFetcher()
        // Not started: dropped, read again by whoever reads next.
        for (_, queue) in pending {
            var queue = queue
            while let item = queue.popFirst() {
                item.message.destroy()
                inMemory -= 1
                progress[item.partition]?.inMemory -= 1
            }
        }
        pending = [:]
        ready = Deque()
        if !running.isEmpty { timers.schedule(.drainDeadline, after: limits.drainTimeout) }
    }

    func flushCounters() async {
        let counts = pendingCounts
        let newlyDelivered = delivered
        let peakNow = peak
        delivered = 0
        pendingCounts = (0, 0, 0)
        if counts.invalid > 0 { await consumer.count(\.invalidEvents, counts.invalid) }
        if counts.tombstones > 0 { await consumer.count(\.tombstones, counts.tombstones) }
        if counts.failures > 0 { await consumer.count(\.handlerFailures, counts.failures) }
        if newlyDelivered > 0 { await consumer.count(\.eventsDelivered, newlyDelivered) }
        if peakNow > reportedPeak {
            reportedPeak = peakNow
            await consumer.notePeakInProcessing(peakNow)
        }
    }
}

/// The answer `process` owes librdkafka's rebalance for a revocation: the offsets to commit
/// before the hand-over. The rebalance waits for it up to a bound, then goes on; from then on
/// the answer is refused, and the loop must not change what it tracks of the partitions
/// (they may be assigned again meanwhile).
final class RevocationReply: Sendable {
    private enum State { case waiting, claimed, abandoned }
    private let state = Mutex(State.waiting)
    private let offsets = Mutex<[(TopicPartition, Int64)]>([])
    private let answered = DispatchSemaphore(value: 0)

    /// The loop: whether the rebalance still waits, in which case the loop now owes it
    /// `send(_:)`, which it sends at once.
    func claim() -> Bool {
        state.withLock { state in
            guard state == .waiting else { return false }
            state = .claimed
            return true
        }
    }

    func send(_ entries: [(TopicPartition, Int64)]) {
        offsets.withLock { $0 = entries }
        answered.signal()
    }

    /// The rebalance, on librdkafka's thread: the offsets to commit, or nil when the loop
    /// did not answer within `timeout` (the answer is then refused).
    func wait(timeout: Duration) -> [(TopicPartition, Int64)]? {
        if answered.wait(timeout: .now() + .milliseconds(Int(max(.zero, timeout).milliseconds))) == .success {
            return offsets.withLock { $0 }
        }
        let claimed = state.withLock { state in
            guard state == .waiting else { return true }
            state = .abandoned
            return false
        }
        guard claimed else { return nil }
        // Claimed just now: the loop is sending its answer.
        answered.wait()
        return offsets.withLock { $0 }
    }
}
