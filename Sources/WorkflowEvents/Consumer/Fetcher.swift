// Taking messages from librdkafka: the only caller of the client's consume calls.

import Synchronization

/// What this consumer has taken from librdkafka and not handed to a reader (the buffer,
/// the batch being read ahead, the messages held for partitions the application paused),
/// and the order of everything that moves librdkafka's position (see ``FetchPath``).
///
/// Every consume call of the consumer is made here: the readers' fills, the batch read
/// ahead, the keep-alive's fetch, and `process`'s fetches. Owned by the consumer actor and
/// used only from it: its methods run on the actor (`nonisolated(nonsending)`), so its
/// state needs no lock.
final class Fetcher {
    /// What a fill leaves running for the next one: nothing, a batch taken ahead, or a
    /// batch taken and validated ahead.
    enum ReadAhead { case none, raw, decoded }

    let client: any ConsumerClient
    let clock: ConsumerClock
    let context: ConsumerClientContext
    let batchSize: Int
    /// Whether a group assigns the partitions (then revoked partitions' messages go).
    let inGroup: Bool

    /// Messages fetched, oldest first, for the readers to take.
    var buffer = FetchedMessageBuffer()
    /// Messages of partitions paused by the application, fetched before the pause.
    private var held: [TopicPartition: [FetchedMessage]] = [:]
    private var path = FetchPath<CheckedContinuation<Void, Never>, Task<[FetchedMessage], Never>>()
    /// When librdkafka was last asked for messages: its `max.poll.interval.ms` counts from
    /// it, and rebalance callbacks run only then.
    private(set) var lastFetch: ContinuousClock.Instant
    /// The assignment generation whose revoked partitions were last dropped.
    private(set) var seenGeneration = 0

    init(client: any ConsumerClient, clock: ConsumerClock, context: ConsumerClientContext, batchSize: Int, inGroup: Bool) {
        self.client = client
        self.clock = clock
        self.context = context
        self.batchSize = batchSize
        self.inGroup = inGroup
        self.lastFetch = clock.now()
    }

    /// Whether a caller owns the fetch path.
    var isPathOwned: Bool { path.isOwned }

    /// How many messages wait in the buffer and for paused partitions.
    var count: Int { buffer.count + held.values.reduce(0) { $0 + $1.count } }

    // MARK: Fetching

    /// Waits until librdkafka has messages (or the deadline, or the task's cancellation,
    /// which wakes librdkafka's wait) and moves them into the buffer; then, when `readAhead`
    /// is not `.none` and `keepReading()` says so, takes the next batch on the poll queue
    /// while the reader works through this one. When another caller fetches, waits for it
    /// instead: its batch is what this one waited for.
    nonisolated(nonsending) func fill(
        until deadline: ContinuousClock.Instant?, readAhead mode: ReadAhead, keepReading: () -> Bool
    ) async {
        var batch: [FetchedMessage]
        switch path.acquire() {
        case .wait:
            await withCheckedContinuation { path.wait($0) }
            return
        case .takeReadAhead(let pending):
            batch = await pending.value
        case .fetch:
            batch = []
        }
        liftKeepAlivePause()
        lastFetch = clock.now()
        if batch.isEmpty { batch = await client.fetchAvailable(maximum: batchSize) }
        if batch.isEmpty {
            var wait = Duration.seconds(1)
            if let deadline { wait = min(wait, max(.zero, deadline - clock.now())) }
            let client = self.client
            let maximum = batchSize
            batch = await withTaskCancellationHandler {
                await client.fetch(timeout: wait, maximum: maximum)
            } onCancel: {
                client.wakeUp()
            }
        }
        buffer.append(batch)
        release(readingAhead: !batch.isEmpty && keepReading() ? mode : .none)
        dropRevokedPartitions()
    }

    /// Takes the fetch path, waiting for its owner to let go, and moves a batch read ahead
    /// into the buffer. The caller owns the path until `release()`.
    nonisolated(nonsending) func acquire() async {
        while true {
            switch path.acquire() {
            case .wait:
                await withCheckedContinuation { path.wait($0) }
            case .takeReadAhead(let pending):
                buffer.append(await pending.value)
                dropRevokedPartitions()
                return
            case .fetch:
                return
            }
        }
    }

    /// Lets go of the fetch path, starting the next batch ahead when `mode` asks for it,
    /// and resumes the callers waiting for the path.
    func release(readingAhead mode: ReadAhead = .none) {
        lastFetch = clock.now()
        var next: Task<[FetchedMessage], Never>?
        if mode != .none {
            let client = self.client
            let (maximum, decode) = (batchSize, mode == .decoded)
            next = Task.detached { await client.fetchAhead(maximum: maximum, decode: decode) }
        }
        for waiter in path.release(readingAhead: next) { waiter.resume() }
    }

    /// Moves a batch taken ahead into the buffer: before the buffer is searched or cut.
    /// Nothing to do while another caller owns the path (it takes that batch).
    nonisolated(nonsending) func absorbReadAhead() async {
        guard let pending = path.takeReadAheadIfIdle() else { return }
        buffer.append(await pending.value)
        release()
        dropRevokedPartitions()
    }

    /// For the keep-alive, while the reader is busy: asks librdkafka for at most one
    /// message, which serves its callbacks; first pauses the assignment when `pause` is
    /// set (again each time: a rebalance meanwhile may have assigned new partitions).
    /// Returns whether the pause began now.
    nonisolated(nonsending) func serveWhileBusy(pause: Bool) async -> Bool {
        var began = false
        if pause {
            began = path.pauseForKeepAlive()
            client.setPaused(true, context.assignment.sorted())
        }
        lastFetch = clock.now()
        // Owned while librdkafka is asked, so that no fill takes later messages meanwhile.
        await acquire()
        buffer.append(await client.fetchAvailable(maximum: 1))
        release()
        dropRevokedPartitions()
        return began
    }

    /// Lifts the keep-alive's pause, if it paused the assignment: the partitions the
    /// application did not pause are fetched again.
    func liftKeepAlivePause() {
        guard path.liftKeepAlivePause() else { return }
        let resumed = context.state.withLock { $0.assignment.subtracting($0.userPaused) }
        client.setPaused(false, resumed.sorted())
    }

    /// For `process`, the only reader while it runs (the keep-alive is stopped, and seeks,
    /// pauses and assignments are refused): a batch, validated on the poll queue, waiting
    /// up to `timeout`. The close wakes it.
    nonisolated(nonsending) func fetchForProcess(timeout: Duration) async -> [FetchedMessage] {
        lastFetch = clock.now()
        return await client.fetch(timeout: timeout, maximum: batchSize, decode: true)
    }

    // MARK: What waits

    /// Holds a message of a partition the application paused, until it is resumed.
    func hold(_ message: FetchedMessage, of partition: TopicPartition) {
        held[partition, default: []].append(message)
    }

    /// The messages held for these resumed partitions go back in front of the buffer.
    func releaseHeld(_ partitions: [TopicPartition]) {
        var messages: [FetchedMessage] = []
        for partition in partitions { messages += held.removeValue(forKey: partition) ?? [] }
        buffer.prepend(messages)
    }

    /// The offset of the next message fetched for `partition`, if one waits.
    func firstOffset(of partition: TopicPartition) -> Int64? {
        held[partition]?.first?.offset ?? buffer.firstOffset(of: partition)
    }

    /// Destroys what was fetched for the partitions `shouldDrop` names (a seek, a new
    /// assignment, a revocation).
    func drop(where shouldDrop: (TopicPartition) -> Bool) {
        buffer.drop(where: shouldDrop)
        for partition in held.keys where shouldDrop(partition) {
            for message in held.removeValue(forKey: partition) ?? [] { message.destroy() }
        }
    }

    /// After a rebalance, messages of partitions this member no longer owns are dropped:
    /// their new owner reads them from the committed offset.
    func dropRevokedPartitions() {
        guard inGroup else { return }
        let (generation, assignment) = context.state.withLock { ($0.generation, $0.assignment) }
        guard generation != seenGeneration else { return }
        seenGeneration = generation
        drop { !assignment.contains($0) }
    }

    /// Takes every message that waits, in order, held ones first; the caller owns them.
    func takeAll() -> [FetchedMessage] {
        var messages = held.values.flatMap { $0 }
        held = [:]
        messages += buffer.removeAll()
        return messages
    }

    /// Destroys every message that waits; a batch being read ahead is destroyed when it
    /// comes, and `then` runs after it.
    func destroyAll(then: (@Sendable () -> Void)? = nil) {
        buffer.destroyAll()
        for (_, messages) in held { for message in messages { message.destroy() } }
        held = [:]
        guard let pending = path.pendingReadAhead else {
            then?()
            return
        }
        Task.detached {
            for message in await pending.value { message.destroy() }
            then?()
        }
    }
}
