import Foundation
import Logging
import Synchronization
import WorkflowEventsTesting

@testable import WorkflowEvents

/// A Kafka cluster in memory: topics of partitions of records, and each group's committed
/// offsets. Consumers reach it through ``InMemoryConsumerClient``; every commit is recorded.
final class InMemoryKafka: Sendable {
    struct Record: Sendable {
        var key: [UInt8]?
        var value: [UInt8]?
        var headers: [KafkaHeader] = []
        var timestamp: Date?
    }

    struct Commit: Sendable {
        let group: String
        let offsets: [TopicPartition: Int64]
    }

    struct State {
        var logs: [TopicPartition: [Record]] = [:]
        var partitionCounts: [String: Int32] = [:]
        var committed: [String: [TopicPartition: Int64]] = [:]
        var commits: [Commit] = []
        /// Whether `checkConnection` and metadata requests fail.
        var unreachable = false
        /// With `n`, a client hands out one message every `n` fetches, none in between.
        var drip: Int?
        /// Errors the next commits fail with, in order.
        var commitFailures: [KafkaError] = []
        /// Every message handed to a consumer, to check each is destroyed once.
        var handedOut: [InMemoryMessage] = []
        var clients: [InMemoryConsumerClient.Weak] = []
    }

    let state = Mutex(State())

    init() {}

    func createTopic(_ name: String, partitions: Int) {
        state.withLock { state in
            state.partitionCounts[name] = Int32(partitions)
            for partition in 0..<Int32(partitions) { state.logs[TopicPartition(topic: name, partition: partition)] = [] }
        }
    }

    /// Appends records to a partition; wakes consumers waiting for messages.
    @discardableResult
    func append(_ records: [Record], to partition: TopicPartition) -> Range<Int64> {
        let range = state.withLock { state -> Range<Int64> in
            precondition(state.logs[partition] != nil, "no partition \(partition): create its topic first")
            let start = Int64(state.logs[partition]!.count)
            state.logs[partition]!.append(contentsOf: records)
            return start..<start + Int64(records.count)
        }
        notifyClients()
        return range
    }

    /// Appends events, encoded as the contract says, to a partition.
    @discardableResult
    func append(events: [WorkflowEvent], to partition: TopicPartition) -> Range<Int64> {
        append(events.map { Record(key: Array($0.workflowID.utf8), value: try! $0.jsonBytes()) }, to: partition)
    }

    /// Appends `count` sample events to `topic`, round-robin over its partitions, or each
    /// workflow's to one partition (as a producer keying by workflow does); returns where
    /// each event went.
    @discardableResult
    func appendSampleEvents(count: Int, to topic: String, byWorkflow: Bool = false) -> [UUID: (TopicPartition, Int64)] {
        let partitions = state.withLock { $0.partitionCounts[topic] ?? 0 }
        var placed: [UUID: (TopicPartition, Int64)] = [:]
        for (index, event) in SampleEvents.make(count: count).enumerated() {
            let hash = event.workflowID.utf8.reduce(0) { ($0 &* 31 &+ Int($1)) & 0xFFFF }
            let number = Int32((byWorkflow ? hash : index) % Int(partitions))
            let partition = TopicPartition(topic: topic, partition: number)
            placed[event.eventID] = (partition, append(events: [event], to: partition).lowerBound)
        }
        return placed
    }

    func endOffset(of partition: TopicPartition) -> Int64 {
        state.withLock { Int64($0.logs[partition]?.count ?? 0) }
    }

    func committed(group: String) -> [TopicPartition: Int64] {
        state.withLock { $0.committed[group] ?? [:] }
    }

    var commits: [Commit] { state.withLock { $0.commits } }

    /// Messages handed out that were not destroyed exactly once.
    var messagesNotDestroyedOnce: [(TopicPartition, Int64, destroyed: Int)] {
        state.withLock { state in
            state.handedOut.compactMap { message in
                let count = message.destroyCount.load(ordering: .relaxed)
                return count == 1 ? nil : (message.record.topicPartition, message.record.offset, count)
            }
        }
    }

    /// While unreachable, metadata requests fail and fetches bring nothing.
    func setUnreachable(_ unreachable: Bool) {
        state.withLock { $0.unreachable = unreachable }
        notifyClients()
    }

    /// From now on each client hands out one message every `fetches` fetches (none in
    /// between): a reader that is behind sees gaps between its events.
    func drip(every fetches: Int?) {
        state.withLock { $0.drip = fetches }
    }

    func failNextCommit(with error: KafkaError) {
        state.withLock { $0.commitFailures.append(error) }
    }

    /// A consumer of this cluster, made the way `WorkflowEventConsumer` makes its client.
    func makeConsumer(
        _ configuration: WorkflowEventConsumer.Configuration, protocol rebalanceProtocol: InMemoryConsumerClient.RebalanceProtocol = .eager,
        logger: Logger = Logger(label: "in-memory"), clock: VirtualClock? = nil
    ) throws -> (WorkflowEventConsumer, InMemoryConsumerClient) {
        let made = Mutex<InMemoryConsumerClient?>(nil)
        let consumer = try WorkflowEventConsumer(
            configuration: configuration, logger: logger, clock: clock?.consumerClock ?? .continuous
        ) { context in
            let client = InMemoryConsumerClient(
                kafka: self, context: context, configuration: configuration, rebalanceProtocol: rebalanceProtocol, clock: clock)
            made.withLock { $0 = client }
            return client
        }
        let client = made.withLock { $0 }!
        state.withLock { $0.clients.append(.init(client: client)) }
        return (consumer, client)
    }

    func notifyClients() {
        for client in state.withLock({ $0.clients.compactMap(\.client) }) { client.notify() }
    }
}

/// The consumer's client over an ``InMemoryKafka``. As librdkafka's: every fetch and
/// rebalance runs on a serial queue of its own (a rebalance inside the next fetch, or the
/// close), never on Swift's cooperative pool; a pause or resume runs between two fetches.
/// A group has one member, this one: it is given every partition of its topics, and the
/// test takes them back or gives more (``revoke(_:lost:)``, ``assignMore(_:)``).
final class InMemoryConsumerClient: ConsumerClient, Sendable {
    enum RebalanceProtocol: Sendable { case eager, cooperative }

    struct Weak: @unchecked Sendable {
        weak var client: InMemoryConsumerClient?
    }

    enum Rebalance {
        case assign([TopicPartition])
        case revoke([TopicPartition], lost: Bool)
    }

    struct State {
        var subscription: [String] = []
        var pendingRebalances: [Rebalance] = []
        /// Assigned partitions in order, and where each fetch goes on.
        var assigned: [TopicPartition] = []
        var fetchPositions: [TopicPartition: Int64] = [:]
        /// The offset after the last message handed out (librdkafka's position).
        var positions: [TopicPartition: Int64] = [:]
        var paused: Set<TopicPartition> = []
        var stored: [TopicPartition: Int64] = [:]
        /// Every store, in order.
        var stores: [(TopicPartition, Int64)] = []
        var woken = false
        /// Whether the partitions being revoked are lost: nothing of them is committed.
        var losing = false
        /// Commits of lost partitions' stored offsets sent at their unassignment (refused).
        var refusedCommitsOfLostPartitions: [[TopicPartition: Int64]] = []
        var closing = false
        var closed = false
        var fetches = 0
        /// Errors handed out as error messages by the next fetch.
        var errorsToDeliver: [KafkaError] = []
        /// Runs the rebalances asked for at the next seek, before it applies: a rebalance (or
        /// a close) that lands while a seek is on its way.
        var rebalanceAtSeek = false
        /// Fetches counted for `InMemoryKafka.drip(every:)`.
        var dripFetches = 0
    }

    let kafka: InMemoryKafka
    let context: ConsumerClientContext
    let group: String?
    let autoCommit: Bool
    let reset: WorkflowEventConsumer.AutoOffsetReset
    let rebalanceProtocol: RebalanceProtocol
    /// With a virtual clock, a fetch that finds nothing moves the clock to the end of its
    /// wait instead of waiting.
    let clock: VirtualClock?
    let state = Mutex(State())
    let pollQueue = DispatchQueue(label: "in-memory.poll")
    let operationsQueue = DispatchQueue(label: "in-memory.operations")
    let handlerQueue = DispatchQueue(label: "in-memory.rebalance-handlers")
    /// Signalled on every change a waiting fetch may be waiting for.
    let changed = NSCondition()
    nonisolated(unsafe) var changes = 0  // guarded by `changed`

    init(
        kafka: InMemoryKafka, context: ConsumerClientContext, configuration: WorkflowEventConsumer.Configuration,
        rebalanceProtocol: RebalanceProtocol, clock: VirtualClock? = nil
    ) {
        self.clock = clock
        self.kafka = kafka
        self.context = context
        self.group = configuration.groupID
        self.autoCommit = configuration.enableAutoCommit
        self.reset = configuration.autoOffsetReset
        self.rebalanceProtocol = rebalanceProtocol
    }

    // MARK: Test controls

    /// The group takes `partitions` back (or they are lost), at the next fetch.
    func revoke(_ partitions: [TopicPartition], lost: Bool = false) {
        state.withLock { $0.pendingRebalances.append(.revoke(partitions, lost: lost)) }
        notify()
    }

    /// The group gives `partitions` too (in an eager group: the whole assignment again), at
    /// the next fetch.
    func assignMore(_ partitions: [TopicPartition]) {
        state.withLock { $0.pendingRebalances.append(.assign(partitions)) }
        notify()
    }

    /// The rebalances asked for run at the next seek, just before it applies.
    func rebalanceAtNextSeek() {
        state.withLock { $0.rebalanceAtSeek = true }
    }

    /// The next fetch hands out `error` as an error message.
    func deliverError(_ error: KafkaError) {
        state.withLock { $0.errorsToDeliver.append(error) }
        notify()
    }

    /// librdkafka's auto-commit timer: commits the stored offsets.
    func autoCommitNow() {
        let stored = state.withLock { $0.stored }
        try? commitToKafka(stored)
    }

    /// How many times the consumer asked for messages.
    var fetchCount: Int { state.withLock { $0.fetches } }
    var stores: [(TopicPartition, Int64)] { state.withLock { $0.stores } }
    var stored: [TopicPartition: Int64] { state.withLock { $0.stored } }
    var paused: Set<TopicPartition> { state.withLock { $0.paused } }
    var isClosed: Bool { state.withLock { $0.closed } }

    func notify() {
        changed.lock()
        changes += 1
        changed.broadcast()
        changed.unlock()
    }

    private var changeCount: Int {
        changed.lock()
        defer { changed.unlock() }
        return changes
    }

    /// Waits until a change after `seen`, or `deadline`; false on the deadline.
    private func waitForChange(after seen: Int, until deadline: Date) -> Bool {
        changed.lock()
        defer { changed.unlock() }
        while changes == seen {
            if !changed.wait(until: deadline) { return changes != seen }
        }
        return true
    }

    // MARK: Fetching

    func fetch(timeout: Duration, maximum: Int, decode: Bool) async -> [FetchedMessage] {
        await onPollQueue { [self] in
            let deadline = Date().addingTimeInterval(timeout.seconds)
            let virtualDeadline = clock?.now.advanced(by: timeout)
            while true {
                runPendingRebalances()
                let seen = changeCount
                var batch = take(maximum: maximum)
                if !batch.isEmpty {
                    if decode { FetchedMessage.decodeValues(&batch) }
                    return batch
                }
                let stop = state.withLock { state in
                    defer { state.woken = false }
                    return state.woken || state.closing
                }
                if stop { return [] }
                if let clock, let virtualDeadline {
                    clock.advance(to: virtualDeadline)
                    return []
                }
                if !waitForChange(after: seen, until: deadline) { return [] }
            }
        }
    }

    func fetchAvailable(maximum: Int) async -> [FetchedMessage] {
        await onPollQueue { [self] in
            runPendingRebalances()
            return take(maximum: maximum)
        }
    }

    func fetchAhead(maximum: Int, decode: Bool) async -> [FetchedMessage] {
        await onPollQueue { [self] in
            runPendingRebalances()
            var batch = take(maximum: maximum)
            if decode { FetchedMessage.decodeValues(&batch) }
            return batch
        }
    }

    func wakeUp() {
        state.withLock { $0.woken = true }
        notify()
    }

    var fetcherWakeUps: Int { 0 }

    private func onPollQueue<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            pollQueue.async { continuation.resume(returning: body()) }
        }
    }

    /// Takes up to `maximum` messages of the assigned partitions not paused, a few of each
    /// partition in turn (as librdkafka's fetch responses interleave them).
    private func take(maximum: Int) -> [FetchedMessage] {
        let (taken, errors) = state.withLock { state -> ([InMemoryMessage], [KafkaError]) in
            guard !state.closing else { return ([], []) }
            state.fetches += 1
            let errors = state.errorsToDeliver
            state.errorsToDeliver = []
            let (unreachable, drip) = kafka.state.withLock { ($0.unreachable, $0.drip) }
            if unreachable { return ([], errors) }
            var maximum = maximum
            if let drip {
                state.dripFetches += 1
                guard state.dripFetches % drip == 0 else { return ([], errors) }
                maximum = 1
            }
            var taken: [InMemoryMessage] = []
            let logs = kafka.state.withLock { $0.logs }
            var progress = true
            while taken.count < maximum && progress {
                progress = false
                for partition in state.assigned where !state.paused.contains(partition) {
                    let log = logs[partition] ?? []
                    var next = state.fetchPositions[partition] ?? 0
                    var chunk = 0
                    while chunk < 4, taken.count < maximum, next < Int64(log.count) {
                        let record = log[Int(next)]
                        taken.append(
                            InMemoryMessage(
                                ConsumerRecord(
                                    topic: partition.topic, partition: partition.partition, offset: next, key: record.key,
                                    value: record.value, headers: record.headers, timestamp: record.timestamp)))
                        next += 1
                        chunk += 1
                        progress = true
                    }
                    state.fetchPositions[partition] = next
                    if chunk > 0 { state.positions[partition] = next }
                }
            }
            return (taken, errors)
        }
        let errorMessages = errors.map {
            InMemoryMessage(ConsumerRecord(topic: "", partition: -1, offset: -1, key: nil, value: nil), error: $0)
        }
        let all = errorMessages + taken
        kafka.state.withLock { $0.handedOut.append(contentsOf: all) }
        return all.map { FetchedMessage($0) }
    }

    private func runPendingRebalances() {
        while let rebalance = state.withLock({ $0.pendingRebalances.isEmpty ? nil : $0.pendingRebalances.removeFirst() }) {
            run(rebalance)
        }
    }

    private func run(_ rebalance: Rebalance) {
        let cooperative = rebalanceProtocol == .cooperative
        switch rebalance {
        case .assign(let partitions):
            let all = cooperative ? partitions : (state.withLock { $0.assigned } + partitions)
            if !cooperative, !state.withLock({ $0.assigned.isEmpty }) {
                context.partitionsRevoked(state.withLock { $0.assigned }, lost: false, cooperative: false, with: operations)
            }
            context.partitionsAssigned(all, cooperative: cooperative, with: operations)
        case .revoke(let partitions, let lost):
            let owned = Set(state.withLock { $0.assigned })
            let revoked = partitions.filter { owned.contains($0) }
            guard !revoked.isEmpty else { return }
            state.withLock { $0.losing = lost }
            defer { state.withLock { $0.losing = false } }
            if cooperative {
                context.partitionsRevoked(revoked, lost: lost, cooperative: true, with: operations)
            } else {
                let kept = state.withLock { $0.assigned }.filter { !revoked.contains($0) }
                context.partitionsRevoked(Array(owned).sorted(), lost: lost, cooperative: false, with: operations)
                // An eager group gives every member its new assignment, an empty one too.
                context.partitionsAssigned(kept, cooperative: false, with: operations)
            }
        }
    }

    var operations: Operations { Operations(client: self) }

    struct Operations: RebalanceOperations {
        let client: InMemoryConsumerClient

        func assign(_ partitions: [TopicPartition], startOffsets: [TopicPartition: Int64], incremental: Bool) -> KafkaError? {
            client.take(partitions, startOffsets: startOffsets, replacing: !incremental)
            return nil
        }

        func unassign(_ partitions: [TopicPartition], incremental: Bool) -> KafkaError? {
            let gone = incremental ? partitions : client.state.withLock { $0.assigned }
            // As librdkafka 2.0.2: with auto-commit on, the stored offsets of what it gives up
            // are committed, lost partitions' too (the broker refuses those: the member is
            // unknown; the rejoin waits for the refusal).
            if client.autoCommit {
                let (stored, losing) = client.state.withLock { state in
                    (state.stored.filter { gone.contains($0.key) && $0.value >= 0 }, state.losing)
                }
                if !losing {
                    try? client.commitToKafka(stored)
                } else if !stored.isEmpty {
                    client.state.withLock { $0.refusedCommitsOfLostPartitions.append(stored) }
                }
            }
            client.state.withLock { state in
                state.assigned.removeAll { gone.contains($0) }
                for partition in gone {
                    state.fetchPositions[partition] = nil
                    state.positions[partition] = nil
                    state.stored[partition] = nil
                }
            }
            return nil
        }

        func pause(_ paused: Bool, _ partitions: [TopicPartition]) -> (paused: [TopicPartition], error: KafkaError?) {
            let result = client.state.withLock { state -> [TopicPartition] in
                guard paused else {
                    state.paused.subtract(partitions)
                    return []
                }
                let known = partitions.filter { state.assigned.contains($0) }
                state.paused.formUnion(known)
                // As librdkafka 2.0.2: a paused partition drops what was fetched past the
                // last message handed out, and is fetched again from there when resumed
                // (unless a seek since has made that position unknown).
                for partition in known { state.fetchPositions[partition] = state.positions[partition] ?? state.fetchPositions[partition] }
                return known
            }
            client.notify()
            return (result, nil)
        }

        func store(_ entries: [(TopicPartition, Int64)]) {
            client.state.withLock { state in
                for (partition, offset) in entries where state.assigned.contains(partition) {
                    state.stored[partition] = offset
                    state.stores.append((partition, offset))
                }
            }
        }

        func discardStoredOffsets(_ partitions: [TopicPartition]) {
            client.state.withLock { state in
                for partition in partitions { state.stored[partition] = nil }
            }
        }
    }

    /// Takes partitions on, each at its start offset, else its group's committed offset,
    /// else where the reset policy says.
    private func take(_ partitions: [TopicPartition], startOffsets: [TopicPartition: Int64], replacing: Bool) {
        let committed = group.map { kafka.committed(group: $0) } ?? [:]
        state.withLock { state in
            if replacing {
                state.assigned = []
                state.fetchPositions = [:]
                state.positions = [:]
            }
            for partition in partitions {
                let end = kafka.endOffset(of: partition)
                let start: Int64
                switch startOffsets[partition] ?? committed[partition] {
                case RDKafkaOffset.beginning: start = 0
                case RDKafkaOffset.end: start = end
                case let offset? where offset >= 0: start = offset
                default: start = reset == .latest ? end : 0
                }
                if !state.assigned.contains(partition) { state.assigned.append(partition) }
                state.fetchPositions[partition] = start
            }
        }
        notify()
    }

    // MARK: Subscription and assignment

    func subscribe(_ topics: [String]) async throws {
        let partitions = try await self.partitions(of: topics, timeout: .seconds(1))
        state.withLock { state in
            state.subscription = topics
            state.pendingRebalances.append(.assign(partitions.filter { !state.assigned.contains($0) }))
        }
        notify()
    }

    func unsubscribe() async throws {
        state.withLock { state in
            state.subscription = []
            state.pendingRebalances.append(.revoke(state.assigned, lost: false))
        }
        notify()
    }

    func assign(_ partitions: [(TopicPartition, Int64)]) async throws {
        take(partitions.map(\.0), startOffsets: Dictionary(partitions, uniquingKeysWith: { _, last in last }), replacing: true)
        context.assignedDirectly(partitions, with: operations)
    }

    func setPaused(_ paused: Bool, _ partitions: [TopicPartition], decidedAt generation: Int?, then done: (@Sendable () -> Void)?) {
        guard !partitions.isEmpty else {
            done?()
            return
        }
        wakeUp()
        pollQueue.async { [self] in
            defer { done?() }
            _ = context.setPaused(paused, partitions, decidedAt: generation, with: operations)
        }
    }

    func partitions(of topics: [String], timeout: Duration) async throws -> [TopicPartition] {
        try kafka.state.withLock { state in
            guard !state.unreachable else {
                throw KafkaError(code: .transport, message: "unreachable", operation: "fetch metadata")
            }
            return try topics.flatMap { topic in
                guard let count = state.partitionCounts[topic] else {
                    throw KafkaError(code: .unknownTopicOrPartition, message: "no topic \(topic)", operation: "fetch metadata")
                }
                return (0..<count).map { TopicPartition(topic: topic, partition: $0) }
            }
        }
    }

    func topicNames(timeout: Duration) async throws -> [String] {
        kafka.state.withLock { $0.partitionCounts.keys.sorted() }
    }

    func checkConnection(timeout: Duration) async throws {
        if kafka.state.withLock({ $0.unreachable }) {
            throw KafkaError(code: .transport, message: "every broker is down", operation: "connect")
        }
    }

    // MARK: Offsets

    func store(_ entries: [(TopicPartition, Int64)]) {
        operations.store(entries)
    }

    /// Commits, and reports the answer as librdkafka's commit callback does.
    fileprivate func commitToKafka(_ offsets: [TopicPartition: Int64]) throws {
        guard let group, !offsets.isEmpty else { return }
        do {
            try kafka.state.withLock { state in
                if !state.commitFailures.isEmpty { throw state.commitFailures.removeFirst() }
                state.committed[group, default: [:]].merge(offsets) { _, new in new }
                state.commits.append(.init(group: group, offsets: offsets))
            }
        } catch let error as KafkaError {
            context.commitAnswered(error, offsets: [], handingOver: false)
            throw error
        }
        context.commitAnswered(nil, offsets: offsets.map { ($0.key, $0.value) }, handingOver: false)
    }

    func commit(_ offsets: [(TopicPartition, Int64)]?, forRebalanceHandler: Bool) async throws {
        let queue = forRebalanceHandler ? handlerQueue : operationsQueue
        let result: Result<Void, any Error> = await withCheckedContinuation { continuation in
            queue.async { [self] in
                continuation.resume(
                    returning: Result {
                        if state.withLock({ $0.closed }) {
                            throw WorkflowEventsError(.clientClosed, "cannot commit: the consumer is closed")
                        }
                        let chosen = offsets.map { Dictionary($0, uniquingKeysWith: { _, last in last }) } ?? state.withLock { $0.stored }
                        try commitToKafka(chosen)
                    })
            }
        }
        try result.get()
    }

    func commitBlocking(_ offsets: [(TopicPartition, Int64)]) {
        try? commitToKafka(Dictionary(offsets, uniquingKeysWith: { _, last in last }))
    }

    func committed(_ partitions: [TopicPartition], timeout: Duration) async throws -> [TopicPartition: Int64] {
        let all = group.map { kafka.committed(group: $0) } ?? [:]
        return all.filter { partitions.contains($0.key) }
    }

    func position(_ partition: TopicPartition) throws -> Int64? {
        state.withLock { $0.positions[partition] }
    }

    func cachedWatermarks(_ partition: TopicPartition) -> (low: Int64?, high: Int64?) {
        guard state.withLock({ $0.assigned.contains(partition) }) else { return (nil, nil) }
        return (0, kafka.endOffset(of: partition))
    }

    func watermarks(_ partition: TopicPartition, timeout: Duration) async throws -> (low: Int64, high: Int64) {
        (0, kafka.endOffset(of: partition))
    }

    func offsets(forTime milliseconds: Int64, of partitions: [TopicPartition], timeout: Duration) async throws
        -> [TopicPartition: Int64?]
    {
        let time = Date(timeIntervalSince1970: Double(milliseconds) / 1000)
        let logs = kafka.state.withLock { $0.logs }
        var result: [TopicPartition: Int64?] = [:]
        for partition in partitions {
            let index = logs[partition]?.firstIndex { ($0.timestamp ?? .distantPast) >= time }
            result[partition] = index.map(Int64.init)
        }
        return result
    }

    func seek(_ partition: TopicPartition, to offset: Int64, timeout: Duration) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            pollQueue.async { [self] in
                if state.withLock({ state in
                    defer { state.rebalanceAtSeek = false }
                    return state.rebalanceAtSeek
                }) {
                    runPendingRebalances()
                }
                let end = kafka.endOffset(of: partition)
                let known = state.withLock { state -> Bool in
                    guard state.assigned.contains(partition) else { return false }
                    state.fetchPositions[partition] = offset == RDKafkaOffset.beginning ? 0 : offset == RDKafkaOffset.end ? end : offset
                    // As librdkafka: a seek is like a new assignment, the last position is forgotten.
                    state.positions[partition] = nil
                    return true
                }
                if known {
                    continuation.resume()
                } else {
                    continuation.resume(
                        throwing: KafkaError(code: .unknownPartition, message: "\(partition) is not assigned", operation: "seek"))
                }
            }
        }
    }

    // MARK: Closing

    var isClosing: Bool { state.withLock { $0.closing || $0.closed } }

    func closeAndDestroy(timeout: Duration) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            operationsQueue.async { [self] in
                closeNow()
                continuation.resume()
            }
        }
    }

    func closeAndDestroyInBackground() {
        operationsQueue.async { [self] in closeNow() }
    }

    /// As librdkafka's close: no fetch starts any more; the assignment is revoked on this
    /// thread (the revocation commits the stored offsets with auto-commit on), then the
    /// member leaves.
    private func closeNow() {
        guard !state.withLock({ $0.closing }) else { return }
        state.withLock { $0.closing = true }
        notify()
        pollQueue.sync {}
        let assigned = state.withLock { $0.assigned }
        if group != nil, !assigned.isEmpty {
            context.partitionsRevoked(assigned, lost: false, cooperative: rebalanceProtocol == .cooperative, with: operations)
        } else if autoCommit {
            autoCommitNow()
        }
        state.withLock { $0.closed = true }
    }
}

extension Duration {
    var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
