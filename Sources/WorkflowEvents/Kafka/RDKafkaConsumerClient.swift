internal import CRDKafka
import Dispatch
import Logging
import Metrics
import Synchronization

// The consumer's librdkafka handle: created, used and destroyed. Calls that block (a poll
// with a timeout, a synchronous commit, a metadata or watermark request, close) run on
// private serial dispatch queues, never on Swift's cooperative pool: `pollQueue` waits for
// messages, `operationsQueue` runs everything else, so that a commit never waits behind a
// poll. Fetching, assignment and offsets are in the files beside this one.

// MARK: - The client

/// Owns one librdkafka consumer handle.
///
/// `@unchecked Sendable`: `handle` and `queue` are written once in `init` and destroyed once
/// in `closeAndDestroyNow()`. Every use of them goes through `using(_:_:)`, which refuses
/// once the destruction has begun, and the destruction waits for the uses in flight; the
/// blocking requests run on `operationsQueue`, as the destruction does, so none can start
/// on a destroyed handle. librdkafka's functions used here are thread-safe.
final class RDKafkaConsumerClient: ConsumerClient, @unchecked Sendable {
    let handle: OpaquePointer
    let queue: OpaquePointer
    /// What the client reports to, and reads of, the consumer.
    let events: any ClientEvents
    /// The box librdkafka's callbacks find `events` in, kept until the handle is destroyed.
    let retainedEvents: Unmanaged<ClientEventsBox>
    let pollQueue = DispatchQueue(label: "workflow-events.consumer.poll")
    let operationsQueue = DispatchQueue(label: "workflow-events.consumer.operations")

    /// Whether the consumer is closing (no fetch starts any more: librdkafka's close serves
    /// the consumer queue itself, and hangs when a fetch takes from it meanwhile) or being
    /// destroyed (nothing starts any more), and how many calls use the handle now.
    struct Uses {
        var closing = false
        var destroying = false
        var active = 0
    }
    let uses = Mutex(Uses())
    /// Signalled by the last use to end once the destruction has begun.
    let lastUseEnded = DispatchSemaphore(value: 0)

    /// Wakes librdkafka's fetcher when its queue has run low (nil when librdkafka does it).
    let fetcherWakeUp: FetcherWakeUp?
    let wakeUpQueue = DispatchQueue(label: "workflow-events.consumer.fetcher-wake-up")
    /// Runs the commits of the application's rebalance handlers.
    let handlerQueue = DispatchQueue(label: "workflow-events.consumer.rebalance-handlers")

    init(properties: [(String, String)], events: any ClientEvents) throws {
        fetcherWakeUp = FetcherWakeUp(properties: properties, librdkafkaVersion: librdkafkaVersionNumber)
        let retained = Unmanaged.passRetained(ClientEventsBox(events))
        do {
            handle = try RDKafkaConfig.withConfiguration(properties) { conf in
                rd_kafka_conf_set_opaque(conf, retained.toOpaque())
                rd_kafka_conf_set_rebalance_cb(conf, rebalanceCallback)
                rd_kafka_conf_set_log_cb(conf, logCallback)
                rd_kafka_conf_set_error_cb(conf, errorCallback)
                rd_kafka_conf_set_offset_commit_cb(conf, offsetCommitCallback)
                rd_kafka_conf_set_stats_cb(conf, statisticsCallback)
                var errorText = [CChar](repeating: 0, count: 512)
                guard let handle = rd_kafka_new(RD_KAFKA_CONSUMER, conf, &errorText, errorText.count) else {
                    throw WorkflowEventsError(
                        .invalidConfiguration, "librdkafka could not create a consumer: \(RDKafkaConfig.cText(errorText))")
                }
                return (handle, true)
            }
        } catch {
            retained.release()
            throw error
        }
        rd_kafka_poll_set_consumer(handle)
        queue = rd_kafka_queue_get_consumer(handle)
        self.events = events
        self.retainedEvents = retained
    }

    // MARK: Using the handle

    func enter(fetching: Bool = false) -> Bool {
        uses.withLock { uses in
            guard !uses.destroying, !(fetching && uses.closing) else { return false }
            uses.active += 1
            return true
        }
    }

    func leave() {
        let last = uses.withLock { uses in
            uses.active -= 1
            return uses.destroying && uses.active == 0
        }
        if last { lastUseEnded.signal() }
    }

    /// Runs `body` with the handle alive; throws `clientClosed` once it is being destroyed.
    func using<T>(_ operation: String, _ body: () throws -> T) throws -> T {
        guard enter() else {
            throw WorkflowEventsError(.clientClosed, "cannot \(operation): the consumer is closed; create a new one")
        }
        defer { leave() }
        return try body()
    }

    /// Runs `body` with the handle alive, or returns `fallback` once it is being destroyed
    /// (or, when `fetching`, closing).
    func usingIfOpen<T>(_ fallback: T, fetching: Bool = false, _ body: () -> T) -> T {
        guard enter(fetching: fetching) else { return fallback }
        defer { leave() }
        return body()
    }

    /// Runs a request that may block on `dispatchQueue`, never on Swift's cooperative pool.
    func request<T: Sendable>(
        on dispatchQueue: DispatchQueue, _ operation: String, _ body: @escaping @Sendable () throws -> T
    ) async throws -> T {
        let result: Result<T, any Error> = await withCheckedContinuation { continuation in
            dispatchQueue.async { [self] in
                continuation.resume(returning: Result { try using(operation, body) })
            }
        }
        return try result.get()
    }

    // MARK: Closing

    /// Leaves the group (committing stored offsets when auto-commit is on), then destroys
    /// the handle once every call using it has returned; later calls throw `clientClosed`.
    /// Every fetched message must have been destroyed first. Returns when done, or after
    /// `timeout` while the close goes on in the background (librdkafka's close cannot be
    /// interrupted).
    func closeAndDestroy(timeout: Duration) async {
        let resumed = Mutex(false)
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let resumeOnce: @Sendable () -> Void = {
                if resumed.withLock({ done in
                    defer { done = true }
                    return !done
                }) {
                    continuation.resume()
                }
            }
            operationsQueue.async { [self] in
                closeAndDestroyNow()
                resumeOnce()
            }
            DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(Int(timeout.milliseconds))) {
                resumeOnce()
            }
        }
    }

    /// The same, without waiting: for a consumer that was dropped without being closed.
    func closeAndDestroyInBackground() {
        operationsQueue.async { [self] in closeAndDestroyNow() }
    }

    /// Whether the consumer is closing or closed: no fetch starts any more.
    var isClosing: Bool { uses.withLock { $0.closing || $0.destroying } }

    func closeAndDestroyNow() {
        guard enter() else { return }  // destroyed already
        // No fetch may take from the consumer queue while librdkafka's close serves it: new
        // ones return at once, and the one waiting is woken and ended.
        uses.withLock { $0.closing = true }
        rd_kafka_queue_yield(queue)
        pollQueue.sync {}
        // librdkafka's close serves the last rebalance (a commit before the hand-over
        // included) on this thread: the handle is still in use.
        let err = rd_kafka_consumer_close(handle)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR {
            events.logger.info("closing the consumer reported an error", metadata: ["error": "\(KafkaError(err, operation: "close"))"])
        }
        let othersInFlight = uses.withLock { uses in
            uses.destroying = true
            uses.active -= 1
            return uses.active > 0
        }
        // A fetch, a wake-up or a store still running: let it end first. A fetch ends within
        // its timeout (at most a second), sooner when woken.
        if othersInFlight {
            rd_kafka_queue_yield(queue)
            lastUseEnded.wait()
        }
        rd_kafka_queue_destroy(queue)
        rd_kafka_destroy(handle)
        retainedEvents.release()
    }
}

/// The librdkafka this process runs with, as it names itself ("2.0.2").
let librdkafkaVersionText = String(cString: rd_kafka_version_str())
/// The same as a number, 0xMMmmrrxx.
let librdkafkaVersionNumber = Int(rd_kafka_version())
