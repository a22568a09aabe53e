internal import CRDKafka
import Dispatch
import Synchronization

extension RDKafkaConsumerClient {
    // MARK: Fetching

    /// Takes up to `maximum` messages that are already waiting, without waiting for more. On
    /// the poll queue, as every consume call: librdkafka runs the rebalance callback inside
    /// it, and that callback waits for the application's rebalance handlers.
    func fetchAvailable(maximum: Int) async -> [FetchedMessage] {
        await withCheckedContinuation { continuation in
            pollQueue.async { [self] in
                continuation.resume(
                    returning: usingIfOpen([], fetching: true) {
                        let batch = consumeWaiting(maximum: maximum)
                        keepFetcherBusy(after: batch)
                        return batch
                    })
            }
        }
    }

    /// Waits up to `timeout` on the poll queue for a message, then takes the others already
    /// waiting, up to `maximum` in all. `wakeUp()` ends the wait early.
    ///
    /// (librdkafka's batch call would wait for the whole batch or the timeout, holding back
    /// the first message of a quiet topic for up to the timeout.)
    func fetch(timeout: Duration, maximum: Int, decode: Bool) async -> [FetchedMessage] {
        let milliseconds = timeout.milliseconds
        return await withCheckedContinuation { continuation in
            pollQueue.async { [self] in
                var batch: [FetchedMessage] = usingIfOpen([], fetching: true) {
                    guard let first = rd_kafka_consume_queue(queue, milliseconds) else { return [] }
                    var result = [FetchedMessage(pointer: first)]
                    if maximum > 1 { result += consumeWaiting(maximum: maximum - 1) }
                    keepFetcherBusy(after: result)
                    return result
                }
                if decode { FetchedMessage.decodeValues(&batch) }
                continuation.resume(returning: batch)
            }
        }
    }

    /// Takes up to `maximum` messages that are already waiting, on the poll queue, and
    /// validates their values there when `decode` is set: the reader meanwhile works on
    /// the batch before (so two cores share the work).
    func fetchAhead(maximum: Int, decode: Bool) async -> [FetchedMessage] {
        await withCheckedContinuation { continuation in
            pollQueue.async { [self] in
                var batch: [FetchedMessage] = usingIfOpen([], fetching: true) {
                    let taken = consumeWaiting(maximum: maximum)
                    keepFetcherBusy(after: taken)
                    return taken
                }
                if decode { FetchedMessage.decodeValues(&batch) }
                continuation.resume(returning: batch)
            }
        }
    }

    /// Takes up to `maximum` messages that are already waiting.
    ///
    /// librdkafka before 2.1 moves a partition's position past each message its batch call
    /// takes, then purges from that call's batch the messages of a partition whose version
    /// changed meanwhile (a pause, resume, seek or assignment change, librdkafka's own pause
    /// of the assignment at the start of a rebalance included), and resumes fetching from the
    /// moved position: those messages are never read (librdkafka pull request 4208; seen as
    /// a rolling group's commits passing events no member was given). There the messages are
    /// taken one call each: a message handed out is never purged, and one made outdated is
    /// dropped before it moves the position. The calls take the queue's lock per message as
    /// the batch call does.
    func consumeWaiting(maximum: Int) -> [FetchedMessage] {
        guard Self.batchCallPurgesTakenMessages else { return consumeBatch(timeoutMilliseconds: 0, maximum: maximum) }
        var result: [FetchedMessage] = []
        result.reserveCapacity(min(maximum, 1024))
        while result.count < maximum, let message = rd_kafka_consume_queue(queue, 0) {
            result.append(FetchedMessage(pointer: message))
        }
        return result
    }

    /// Whether this librdkafka's batch call can lose messages taken in it (before 2.1).
    static let batchCallPurgesTakenMessages = librdkafkaVersionNumber < 0x0201_0000

    func consumeBatch(timeoutMilliseconds: Int32, maximum: Int) -> [FetchedMessage] {
        let capacity = max(1, maximum)
        let array = UnsafeMutablePointer<UnsafeMutablePointer<rd_kafka_message_t>?>.allocate(capacity: capacity)
        defer { array.deallocate() }
        let count = rd_kafka_consume_batch_queue(queue, timeoutMilliseconds, array, capacity)
        guard count > 0 else { return [] }
        var result: [FetchedMessage] = []
        result.reserveCapacity(count)
        for index in 0..<count {
            if let message = array[index] { result.append(FetchedMessage(pointer: message)) }
        }
        return result
    }

    /// librdkafka before 2.1 stops fetching while its queue holds `queued.min.messages` or
    /// `queued.max.messages.kbytes`, and looks again only when its broker thread next wakes,
    /// up to a second later (librdkafka issue 2879; 2.1 added `fetch.queue.backoff.ms`). A
    /// reader slower than the fetcher would wait that second each time the queue runs dry.
    /// So when the queue has been near a limit and is now below half of it, the broker
    /// threads are woken with a request for the assigned partitions' latest offsets (whose
    /// answer is not used), one at a time, at most every 10 ms.
    func keepFetcherBusy(after batch: [FetchedMessage]) {
        guard let fetcherWakeUp else { return }
        var bytes = 0
        for message in batch { bytes &+= message.valueLength }
        let length = Int(rd_kafka_queue_length(queue))
        guard fetcherWakeUp.shouldWake(queueLength: length, taken: batch.count, takenBytes: bytes) else { return }
        sendWakeUp(fetcherWakeUp)
    }

    /// Wakes the broker threads with a request whose answer is not used (see above).
    func sendWakeUp(_ fetcherWakeUp: FetcherWakeUp) {
        let partitions = events.assignment
        guard !partitions.isEmpty else {
            fetcherWakeUp.finished()
            return
        }
        wakeUpQueue.async { [self] in
            defer { fetcherWakeUp.finished() }
            usingIfOpen(()) {
                withPartitionList(partitions.map { ($0, Int64(-1)) }) { list in
                    _ = rd_kafka_offsets_for_times(handle, list, 1000)
                }
            }
        }
    }

    /// How many times the fetcher was woken.
    var fetcherWakeUps: Int { fetcherWakeUp?.count ?? 0 }

    /// Ends a `fetch` that is waiting, from any thread.
    func wakeUp() {
        usingIfOpen(()) { rd_kafka_queue_yield(queue) }
    }
}

/// When to wake librdkafka's fetcher (see `RDKafkaConsumerClient.keepFetcherBusy`).
final class FetcherWakeUp: Sendable {
    struct State {
        var nearLimitAt: UInt64 = 0
        var lastWakeUp: UInt64 = 0
        var inFlight = false
        var averageSize = 512.0
        var count = 0
    }

    let messageLimit: Int
    let byteLimit: Double
    let state = Mutex(State())

    /// Nil when librdkafka (2.1 or later) backs off on a full queue by itself.
    init?(properties: [(String, String)], librdkafkaVersion: Int) {
        guard librdkafkaVersion < 0x0201_0000 else { return nil }  // 2.1 has fetch.queue.backoff.ms
        var settings: [String: String] = [:]
        for (key, value) in properties { settings[key] = value }
        messageLimit = settings["queued.min.messages"].flatMap { Int($0) } ?? 100_000
        byteLimit = Double(settings["queued.max.messages.kbytes"].flatMap { Int($0) } ?? 65_536) * 1024
    }

    /// Records what a fetch saw; true when the caller is to send a wake-up (and then call
    /// `finished()`).
    func shouldWake(queueLength: Int, taken: Int, takenBytes: Int) -> Bool {
        let now = DispatchTime.now().uptimeNanoseconds
        return state.withLock { state in
            if taken > 0 {
                // librdkafka counts some bytes of its own per message beside the value.
                state.averageSize = state.averageSize * 0.9 + (Double(takenBytes) / Double(taken) + 64) * 0.1
            }
            let estimatedBytes = Double(queueLength) * state.averageSize
            if queueLength * 2 >= messageLimit || estimatedBytes * 2 >= byteLimit {
                state.nearLimitAt = now
                return false
            }
            guard !state.inFlight, state.nearLimitAt != 0, now &- state.nearLimitAt < 2_000_000_000,
                now &- state.lastWakeUp >= 10_000_000
            else { return false }
            state.inFlight = true
            state.lastWakeUp = now
            state.count += 1
            return true
        }
    }

    /// True when no wake-up is in flight (one is then counted as sent).
    func shouldWakeAfterResume() -> Bool {
        state.withLock { state in
            guard !state.inFlight else { return false }
            state.inFlight = true
            state.lastWakeUp = DispatchTime.now().uptimeNanoseconds
            state.count += 1
            return true
        }
    }

    func finished() {
        state.withLock { $0.inFlight = false }
    }

    var count: Int { state.withLock { $0.count } }
}
