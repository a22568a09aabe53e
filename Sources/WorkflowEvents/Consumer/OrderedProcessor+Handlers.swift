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
        let tracing = WorkflowEventConsumer.isTracing
        while workers < maxConcurrency, !ready.isEmpty {
            let free = maxConcurrency - workers
            let keysPerWorker = (ready.count + free - 1) / free
            var jobs: [Job] = []
            var keys = 0
            while keys < keysPerWorker, jobs.count < Self.eventsPerWorker, let key = ready.popFirst() {
                guard var queue = pending.removeValue(forKey: key) else { continue }
                keys += 1
                let before = jobs.count
                // Each event moves from its key's queue to a job (the worker's) and its
                // coordinates to the running table (the loop's).
                while jobs.count < Self.eventsPerWorker, let item = queue.popFirst() {
                    running[item.id] = InFlight(key: key, partition: item.partition, epoch: item.epoch, offset: item.offset, message: item.message)
                    let message =
                        tracing
                        ? WorkflowEventMessage(
                            event: item.event, topic: item.partition.topic, partition: item.partition.partition, offset: item.offset,
                            key: item.message.key, headers: item.message.headers, timestamp: nil) : nil
                    jobs.append(Job(id: item.id, event: item.event, message: message))
                }
                runningKeys[key, default: 0] += jobs.count - before
                // The rest waits until the key's events given out are done.
                if !queue.isEmpty {
                    pending[key] = queue
                } else if spareQueues.count < Self.spareQueueLimit {
                    spareQueues.append(queue)
                }
            }
            if !jobs.isEmpty { start(jobs, in: &handlers) }
        }
    }

    /// An event a worker runs.
    struct Job: Sendable {
        let id: Int
        let event: WorkflowEvent
        /// The event's coordinates for its span: only when tracing (the key and headers
        /// cost allocations per event).
        let message: WorkflowEventMessage?
    }

    func start(_ jobs: [Job], in handlers: inout DiscardingTaskGroup) {
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
                    guard let message = job.message else { return try await handler(job.event) }
                    return try await WorkflowEventConsumer.withEventSpan(message, group: group, tracing: true) { try await handler(job.event) }
                }
                metrics.handlerDuration.record(since: started)
                var completion = Completion(id: job.id, outcome: outcome, started: true)
                if case .failed = outcome { completion.failedEvent = job.event }
                unreported.append(completion)
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

    /// The workers' completions: the offsets of those done are recorded under one lock. A
    /// failure is logged and dead-lettered first (awaiting the dead-letter topic).
    func finish(_ completions: [Completion]) async {
        var finished: [(TopicPartition, Int64)] = []
        finished.reserveCapacity(completions.count)
        var lastTouched: TopicPartition?
        for completion in completions {
            guard let item = running.removeValue(forKey: completion.id) else { continue }
            if completion.started {
                delivered += 1
                _ = withdrawn.take(completion.id)
            }
            var done = true
            switch completion.outcome {
            case .succeeded:
                break
            case .abandoned:
                done = false
            case .failed(let error):
                // Offsets recorded so far go first: the dead letter awaits.
                record(&finished)
                done = await reportFailure(error, of: item, event: completion.failedEvent)
            }
            item.message.destroy()
            inMemory -= 1
            if let index = progress.index(forKey: item.partition), progress.values[index].epoch == item.epoch {
                progress.values[index].inMemory -= 1
                if done { finished.append((item.partition, item.offset)) }
            }
            // Once the key's events given out are done, its next event, if any, becomes ready.
            // (A key no longer counted, after a revocation, is free too.)
            var left = 0
            if let index = runningKeys.index(forKey: item.key) {
                runningKeys.values[index] -= 1
                left = runningKeys.values[index]
                if left <= 0 { runningKeys.remove(at: index) }
            }
            if left <= 0, pending[item.key] != nil { ready.append(item.key) }
            if item.partition != lastTouched {
                touchedSinceBookkeeping.insert(item.partition)
                lastTouched = item.partition
            }
            if !revocations.isEmpty {
                record(&finished)
                for revocation in revocations where revocation.partitions.contains(item.partition) {
                    completeRevocation(token: revocation.token, timedOut: false)
                }
            }
        }
        record(&finished)
    }

    /// Records these events as finished, and empties the list.
    func record(_ finished: inout [(TopicPartition, Int64)]) {
        guard !finished.isEmpty else { return }
        consumer.recordOffsets { tracker in
            for (partition, offset) in finished { tracker.finish(offset, of: partition) }
        }
        finished.removeAll(keepingCapacity: true)
    }

    /// Logs and counts a handler's failure and dead-letters its event when there is a
    /// dead-letter topic; returns whether the event is done (false when the dead letter
    /// failed: then the loop drains).
    func reportFailure(_ error: any Error, of item: InFlight, event: WorkflowEvent?) async -> Bool {
        pendingCounts.failures += 1
        // A worker reports a failed event with it; decoded again from its message otherwise.
        if let event = event ?? (try? item.message.withValue { try WorkflowEvent.decode($0) }) {
            consumer.logHandlerFailure(
                error,
                WorkflowEventMessage(
                    event: event, topic: item.partition.topic, partition: item.partition.partition, offset: item.offset,
                    key: nil, headers: [], timestamp: nil))
        }
        guard deadLettering else { return true }
        do {
            try await consumer.deadLetter(item.message.record, kind: "handler-failed", reason: "\(error)")
            return true
        } catch {
            failure = failure ?? error
            beginDraining()
            return false
        }
    }
}
