import CoreMetrics
import DequeModule
import Dispatch
import Foundation
import Logging
import Synchronization

// `process`: running handlers in workers, and what their completions change.

extension OrderedProcessor {
    // MARK: Running handlers

    /// The most events one worker is given at a time.
    static let eventsPerWorker = 64

    /// Gives the ready keys' events to new workers while fewer than `maxConcurrency` run:
    /// the ready keys are shared out among the free places, each key with its waiting
    /// events in order, so that a worker goes from one event to the next without waiting
    /// for the loop. A key is held by one worker at a time.
    func schedule(in handlers: inout DiscardingTaskGroup) {
        while workers < maxConcurrency, !ready.isEmpty {
            let free = maxConcurrency - workers
            let keysPerWorker = (ready.count + free - 1) / free
            var chunk: [WorkItem] = []
            var keys = 0
            while keys < keysPerWorker, chunk.count < Self.eventsPerWorker, let key = ready.popFirst() {
                guard var queue = pending.removeValue(forKey: key) else { continue }
                keys += 1
                while chunk.count < Self.eventsPerWorker, let item = queue.popFirst() {
                    chunk.append(item)
                    runningKeys[key, default: 0] += 1
                }
                // The rest waits until the key's events given out are done.
                if !queue.isEmpty { pending[key] = queue }
            }
            if !chunk.isEmpty { start(chunk, in: &handlers) }
        }
    }

    func start(_ chunk: [WorkItem], in handlers: inout DiscardingTaskGroup) {
        struct Job: Sendable {
            let id: Int
            let event: WorkflowEvent
            let message: WorkflowEventMessage
        }
        let jobs = chunk.map { item in
            Job(
                id: item.id, event: item.event,
                message: WorkflowEventMessage(
                    event: item.event, topic: item.partition.topic, partition: item.partition.partition, offset: item.offset,
                    key: item.message.key, headers: item.message.headers, timestamp: nil))
        }
        for item in chunk { running[item.id] = item }
        workers += 1
        let handler = self.handler
        let mailbox = self.mailbox
        let policy = retryPolicy
        let consumer = self.consumer
        let group = consumer.configuration.groupID
        let metrics = consumer.metrics
        let withdrawn = self.withdrawn
        let stopStarting = self.stopStarting
        handlers.addTask {
            // Reported together while handlers are quick (one signal, one wake-up of the
            // loop, for many events), at once after a handler that took a millisecond or more.
            var unreported: [Completion] = []
            var reportedAt = ContinuousClock.now
            for job in jobs {
                if Task.isCancelled || stopStarting.isSet || withdrawn.take(job.id) {
                    unreported.append(Completion(id: job.id, outcome: .abandoned, started: false))
                    continue
                }
                let started = ContinuousClock.now
                let outcome = await callWithRetries(policy, clock: consumer.clock, onRetry: { _, _ in await consumer.count(\.handlerRetries, 1) }) {
                    try await WorkflowEventConsumer.withEventSpan(job.message, group: group) { try await handler(job.event) }
                }
                metrics.handlerDuration.record(since: started)
                unreported.append(Completion(id: job.id, outcome: outcome, started: true))
                let now = ContinuousClock.now
                if now - reportedAt >= .milliseconds(1) {
                    mailbox.post(.finished(unreported))
                    unreported = []
                    reportedAt = now
                }
            }
            if !unreported.isEmpty { mailbox.post(.finished(unreported)) }
            mailbox.post(.workerEnded)
        }
    }

    func finish(_ id: Int, _ outcome: HandlerOutcome, started: Bool) async {
        guard let item = running.removeValue(forKey: id) else { return }
        if started {
            delivered += 1
            _ = withdrawn.take(id)
        }
        defer { item.message.destroy() }
        var done = true
        switch outcome {
        case .succeeded:
            break
        case .abandoned:
            done = false
        case .failed(let error):
            pendingCounts.failures += 1
            consumer.logHandlerFailure(
                error,
                WorkflowEventMessage(
                    event: item.event, topic: item.partition.topic, partition: item.partition.partition, offset: item.offset,
                    key: nil, headers: [], timestamp: nil))
            if deadLettering {
                do {
                    try await consumer.deadLetter(item.message.record, kind: "handler-failed", reason: "\(error)")
                } catch {
                    done = false
                    failure = failure ?? error
                    beginDraining()
                }
            }
        }
        inMemory -= 1
        if progress[item.partition]?.epoch == item.epoch {
            progress[item.partition]!.inMemory -= 1
            if done { consumer.recordOffsets { $0.finish(item.offset, of: item.partition) } }
        }
        // Once the key's events given out are done, its next event, if any, becomes ready.
        let left = (runningKeys[item.key] ?? 1) - 1
        runningKeys[item.key] = left > 0 ? left : nil
        if left == 0, pending[item.key] != nil { ready.append(item.key) }
        touchedSinceBookkeeping.insert(item.partition)
        for revocation in revocations where revocation.partitions.contains(item.partition) {
            completeRevocation(token: revocation.token, timedOut: false)
        }
    }
}
