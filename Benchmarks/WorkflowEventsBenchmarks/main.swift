// Consumer throughput beside a raw librdkafka loop, measured in the same run on the same
// in-process mock cluster. Each figure is the median of several repetitions.
//
//   bash Benchmarks/run.sh (builds, installs the Python side if missing, runs with --python)
//   swift run -c release workflow-events-benchmarks [--events N] [--partitions P] [--repetitions R]
//       [--only limit|decode|stream|main-actor|callback|poll|batches|main-actor-batches|process|process-16|latency|memory] [--python Benchmarks/python/consume.py]
import CRDKafka
import Foundation
import Logging
import MallocCounter
import Synchronization
import WorkflowEvents
import WorkflowEventsTesting

struct Options {
    var events = 1_000_000
    var partitions = 128
    var repetitions = 3
    /// One throughput loop alone (limit, decode, stream, callback, poll), or the latency and
    /// shutdown figures alone, for profiling.
    var only: String?
    /// Benchmarks/python/consume.py: Python's confluent-kafka (without validation, with
    /// msgspec, with Pydantic) on the same cluster, and msgspec decoding the same documents.
    var python: String?

    static let usage =
        "usage: workflow-events-benchmarks [--events N] [--partitions P] [--repetitions R] [--only limit|decode|stream|main-actor|callback|poll|batches|main-actor-batches|process|process-16|latency|memory] [--python Benchmarks/python/consume.py]\n"

    init(_ arguments: [String]) {
        var iterator = arguments.dropFirst().makeIterator()
        while let argument = iterator.next() {
            let text = iterator.next() ?? ""
            let value = Int(text) ?? 0
            switch argument {
            case "--events" where value > 0: events = value
            case "--partitions" where value > 0: partitions = value
            case "--repetitions" where value > 0: repetitions = value
            case "--only"
            where [
                "limit", "decode", "stream", "main-actor", "callback", "poll", "batches", "main-actor-batches", "process", "process-16", "latency",
                "memory",
            ]
            .contains(text):
                only = text
            case "--python" where !text.isEmpty: python = text
            default:
                FileHandle.standardError.write(Data(Self.usage.utf8))
                exit(2)
            }
        }
    }
}

func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }

/// User and system CPU time of the whole process so far, in seconds.
func processCPUSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    func seconds(_ time: timeval) -> Double { Double(time.tv_sec) + Double(time.tv_usec) / 1e6 }
    return seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// The text librdkafka wrote into an error buffer.
func errorMessage(_ buffer: [CChar]) -> String {
    String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// A raw librdkafka handle with these properties.
func rawHandle(_ type: rd_kafka_type_t, _ properties: [(String, String)]) -> OpaquePointer {
    let conf = rd_kafka_conf_new()
    var errorText = [CChar](repeating: 0, count: 512)
    for (key, value) in properties {
        guard rd_kafka_conf_set(conf, key, value, &errorText, errorText.count) == RD_KAFKA_CONF_OK else {
            fatalError("\(key)=\(value): \(errorMessage(errorText))")
        }
    }
    guard let handle = rd_kafka_new(type, conf, &errorText, errorText.count) else {
        fatalError("rd_kafka_new: \(errorMessage(errorText))")
    }
    return handle
}

/// The sum of the partitions' low watermarks: how many messages the mock cluster has
/// deleted (its retention keeps about 5 MB per partition).
func deletedMessages(_ handle: OpaquePointer, topic: String, partitions: Int) -> Int64 {
    var deleted: Int64 = 0
    for partition in 0..<Int32(partitions) {
        var low: Int64 = 0
        var high: Int64 = 0
        _ = rd_kafka_query_watermark_offsets(handle, topic, partition, &low, &high, 5000)
        deleted += low
    }
    return deleted
}

/// The limit: librdkafka's own batch consumer loop, no decoding, no Swift concurrency.
func rawLoop(bootstrap: String, topic: String, partitions: Int, count: Int) -> Double {
    let handle = rawHandle(
        RD_KAFKA_CONSUMER,
        [("bootstrap.servers", bootstrap), ("group.id", "raw-\(UUID())"), ("enable.auto.commit", "false"), ("log_level", "3")])
    rd_kafka_poll_set_consumer(handle)
    let list = rd_kafka_topic_partition_list_new(Int32(partitions))!
    for partition in 0..<Int32(partitions) {
        rd_kafka_topic_partition_list_add(list, topic, partition).pointee.offset = Int64(RD_KAFKA_OFFSET_BEGINNING)
    }
    rd_kafka_assign(handle, list)
    rd_kafka_topic_partition_list_destroy(list)
    let queue = rd_kafka_queue_get_consumer(handle)
    let batch = UnsafeMutablePointer<UnsafeMutablePointer<rd_kafka_message_t>?>.allocate(capacity: 500)
    var received = 0
    var bytes = 0
    var start = ContinuousClock.now
    var idle = 0
    while received < count {
        let n = rd_kafka_consume_batch_queue(queue, 1000, batch, 500)
        if n <= 0 {
            idle += 1
            if idle == 10 {
                let lost = deletedMessages(handle, topic: topic, partitions: partitions)
                fatalError(
                    "the raw loop read \(received) of \(count) messages, then nothing for 10 s; the mock cluster deleted \(lost) old messages (its retention): use more partitions or fewer events"
                )
            }
        }
        for index in 0..<max(0, n) {
            if batch[index]!.pointee.err == RD_KAFKA_RESP_ERR_NO_ERROR {
                if received == 0 { start = ContinuousClock.now }
                received += 1
                bytes &+= batch[index]!.pointee.len
            }
            rd_kafka_message_destroy(batch[index])
        }
    }
    let elapsed = ContinuousClock.now - start
    batch.deallocate()
    rd_kafka_queue_destroy(queue)
    rd_kafka_consumer_close(handle)
    rd_kafka_destroy(handle)
    precondition(bytes > 0)
    return Double(received) / seconds(elapsed)
}

func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

func consumerConfiguration(_ bootstrap: String) -> WorkflowEventConsumer.Configuration {
    var configuration = WorkflowEventConsumer.Configuration(bootstrapServers: bootstrap, maxPollRecords: 500)
    configuration.properties = ["log_level": "3"]
    return configuration
}

/// Runs `body` with a consumer subscribed to `topic`, closed afterwards; `body` returns how
/// many events it read and from when to when.
/// Runs on the caller's actor, and so does `body`.
nonisolated(nonsending) func measure(
    bootstrap: String, topic: String,
    _ body:
        nonisolated(nonsending) (WorkflowEventConsumer) async throws -> (
            count: Int, start: ContinuousClock.Instant, end: ContinuousClock.Instant
        )
) async throws -> Double {
    let consumer = try WorkflowEventConsumer(configuration: consumerConfiguration(bootstrap))
    try await consumer.subscribe([topic])
    let result = try await body(consumer)
    await consumer.close()
    return Double(result.count) / seconds(result.end - result.start)
}

/// Reads `count` events with `for try await` over the stream, on the caller's actor.
nonisolated(nonsending) func readStream(
    _ consumer: WorkflowEventConsumer, topic: String, count: Int
) async throws -> (count: Int, start: ContinuousClock.Instant, end: ContinuousClock.Instant) {
    var received = 0
    var start = ContinuousClock.now
    for try await event in consumer.events(topics: [topic]) {
        if received == 0 { start = ContinuousClock.now }
        received += touch(event)
        if received == count { break }
    }
    return (received, start, ContinuousClock.now)
}

nonisolated func streamLoop(bootstrap: String, topic: String, count: Int) async throws -> Double {
    try await measure(bootstrap: bootstrap, topic: topic) { try await readStream($0, topic: topic, count: count) }
}

/// The stream loop as top-level code or a view model would write it: on the main actor.
@MainActor
func mainActorStreamLoop(bootstrap: String, topic: String, count: Int) async throws -> Double {
    try await measure(bootstrap: bootstrap, topic: topic) { try await readStream($0, topic: topic, count: count) }
}

nonisolated func callbackLoop(bootstrap: String, topic: String, count: Int) async throws -> Double {
    try await measure(bootstrap: bootstrap, topic: topic) { consumer in
        var received = 0
        var start = ContinuousClock.now
        var last = start
        _ = try await consumer.consumeEvents(topics: [topic], timeout: .seconds(3)) { event in
            if received == 0 { start = ContinuousClock.now }
            received += touch(event)
            if received == count { last = ContinuousClock.now }
        }
        precondition(received == count, "callback saw \(received) of \(count)")
        return (received, start, last)
    }
}

/// Reads `count` events in batches of up to 500, on the caller's actor.
nonisolated(nonsending) func readBatches(
    _ consumer: WorkflowEventConsumer, topic: String, count: Int
) async throws -> (count: Int, start: ContinuousClock.Instant, end: ContinuousClock.Instant) {
    var received = 0
    var start = ContinuousClock.now
    reading: for try await batch in consumer.batches(topics: [topic], maxCount: 500, maxWait: .milliseconds(100)) {
        if received == 0 { start = ContinuousClock.now }
        for message in batch {
            received += touch(message.event)
            if received == count { break reading }
        }
    }
    return (received, start, ContinuousClock.now)
}

nonisolated func batchesLoop(bootstrap: String, topic: String, count: Int) async throws -> Double {
    try await measure(bootstrap: bootstrap, topic: topic) { try await readBatches($0, topic: topic, count: count) }
}

/// The batch loop as code that must stay on the main actor would write it (the README's
/// advice there): one hop to the main actor per batch, not per event.
@MainActor
func mainActorBatchesLoop(bootstrap: String, topic: String, count: Int) async throws -> Double {
    try await measure(bootstrap: bootstrap, topic: topic) { try await readBatches($0, topic: topic, count: count) }
}

/// What a loop body reads of each event, as a handler would: its type, workflow and data.
/// Returns 1, so that the loops count with it and nothing is optimized away.
@inline(never)
func touch(_ event: WorkflowEvent) -> Int {
    event.eventType.rawValue.utf8.count > 0 && !event.workflowID.isEmpty && event.payload.data.count >= 0 ? 1 : 0
}

/// `process` with an empty handler, `concurrency` handlers at a time: the cost of its loop.
nonisolated func processLoop(bootstrap: String, topic: String, count: Int, concurrency: Int = 1) async throws -> Double {
    try await measure(bootstrap: bootstrap, topic: topic) { consumer in
        struct Progress {
            var received = 0
            var start = ContinuousClock.now
            var end = ContinuousClock.now
        }
        let progress = Mutex(Progress())
        let (done, signal) = AsyncStream.makeStream(of: Void.self)
        let processing = Task {
            try await consumer.process(topics: [topic], maxConcurrency: concurrency) { event in
                let finished = progress.withLock { progress in
                    if progress.received == 0 { progress.start = ContinuousClock.now }
                    progress.received += touch(event)
                    if progress.received == count { progress.end = ContinuousClock.now }
                    return progress.received == count
                }
                if finished { signal.yield() }
            }
        }
        for await _ in done { break }
        processing.cancel()
        _ = try? await processing.value
        let result = progress.withLock { $0 }
        return (result.received, result.start, result.end)
    }
}

nonisolated func pollLoop(bootstrap: String, topic: String, count: Int) async throws -> Double {
    try await measure(bootstrap: bootstrap, topic: topic) { consumer in
        var received = 0
        var start = ContinuousClock.now
        while received < count {
            let batch = try await consumer.poll(timeout: .seconds(1))
            if received == 0 && !batch.isEmpty { start = ContinuousClock.now }
            for (_, records) in batch {
                for record in records { received += touch(try record.event()) }
            }
        }
        return (received, start, ContinuousClock.now)
    }
}

func decodeLoop(_ documents: [[UInt8]]) throws -> Double {
    var total = 0
    let start = ContinuousClock.now
    for document in documents { total += touch(try WorkflowEvent(validatingJSON: document)) }
    let elapsed = ContinuousClock.now - start
    precondition(total == documents.count)
    return Double(documents.count) / seconds(elapsed)
}

/// Handler starts and ends of an ordered-processing run, until `target` have ended.
final class HandlerClock: Sendable {
    private let state = Mutex<(ended: Int, start: ContinuousClock.Instant?, end: ContinuousClock.Instant?)>((0, nil, nil))
    let target: Int

    init(target: Int) { self.target = target }

    func began() { state.withLock { if $0.start == nil { $0.start = .now } } }

    func ended() {
        state.withLock { state in
            state.ended += 1
            if state.ended == target { state.end = .now }
        }
    }

    var span: Duration? { state.withLock { state in state.end.flatMap { end in state.start.map { end - $0 } } } }
}

/// `process` with a 10 ms handler at `concurrency`: events/s from the first handler's start
/// to the `count`-th handler's end.
nonisolated func orderedLoop(bootstrap: String, topic: String, count: Int, concurrency: Int) async throws -> Double {
    let consumer = try WorkflowEventConsumer(configuration: consumerConfiguration(bootstrap))
    let clock = HandlerClock(target: count)
    let task = Task {
        try await consumer.process(topics: [topic], maxConcurrency: concurrency) { _ in
            clock.began()
            try? await Task.sleep(for: .milliseconds(10))
            clock.ended()
        }
    }
    while clock.span == nil { try await Task.sleep(for: .milliseconds(10)) }
    task.cancel()
    try await task.value
    return Double(count) / seconds(clock.span!)
}

/// Nanoseconds of a clock every thread of this process shares.
func monotonicNanoseconds() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

/// Produces `count` events at `rate` per second with a raw librdkafka producer (linger 1 ms),
/// each carrying its send time in `metadata["sent_ns"]`; runs on a thread of its own.
func paceProducer(bootstrap: String, topic: String, count: Int, rate: Int) -> Thread {
    let thread = Thread {
        let handle = rawHandle(RD_KAFKA_PRODUCER, [("bootstrap.servers", bootstrap), ("linger.ms", "1"), ("log_level", "3")])
        let topicHandle = rd_kafka_topic_new(handle, topic, nil)
        var generator = SampleEvents.Generator(seed: 11)
        let start = monotonicNanoseconds()
        let interval = 1_000_000_000 / UInt64(rate)
        for sequence in 0..<count {
            let due = start + UInt64(sequence) * interval
            // Sleeps rather than spins: on 2 cores a spinning producer would take one of them.
            let now = monotonicNanoseconds()
            if due > now { usleep(UInt32((due - now) / 1000)) }
            rd_kafka_poll(handle, 0)
            var event = generator.next(sequence: sequence)
            event.metadata["sent_ns"] = String(monotonicNanoseconds())
            var bytes = (try? event.jsonBytes()) ?? []
            let key = Array(event.workflowID.utf8)
            _ = bytes.withUnsafeMutableBytes { value in
                key.withUnsafeBytes { keyBytes in
                    rd_kafka_produce(
                        topicHandle, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, value.baseAddress, value.count,
                        keyBytes.baseAddress, keyBytes.count, nil)
                }
            }
        }
        _ = rd_kafka_flush(handle, 10_000)
        rd_kafka_topic_destroy(topicHandle)
        rd_kafka_destroy(handle)
    }
    thread.start()
    return thread
}

/// Produce-to-handler latency of the stream at a steady `rate`: p50, p99, p99.9 in ms.
nonisolated func latency(bootstrap: String, topic: String, count: Int, rate: Int) async throws -> (Double, Double, Double) {
    var configuration = consumerConfiguration(bootstrap)
    // The mock broker answers a fetch that waits for data only at its deadline (a real broker
    // answers when data arrives): keep the deadline short, as a low-latency consumer would.
    // The raw loop below uses the same.
    configuration.properties["fetch.wait.max.ms"] = "1"
    let consumer = try WorkflowEventConsumer(configuration: configuration)
    try await consumer.subscribe([topic])
    // Ready before the first event is sent: assigned, and the fetcher waiting.
    _ = try await consumer.position(TopicPartition(topic: topic, partition: 0))
    _ = paceProducer(bootstrap: bootstrap, topic: topic, count: count, rate: rate)
    var samples: [Double] = []
    samples.reserveCapacity(count)
    for try await event in consumer.events(topics: [topic]) {
        let sent = UInt64(event.metadata["sent_ns"] ?? "") ?? 0
        samples.append(Double(monotonicNanoseconds() - sent) / 1_000_000)
        if samples.count == count { break }
    }
    await consumer.close()
    return percentiles(samples)
}

/// p50, p99 and p99.9 of `samples`, after the first tenth: the steady state, not the
/// warm-up (the first fetches of a new consumer, and the backlog they leave).
func percentiles(_ samples: [Double]) -> (Double, Double, Double) {
    let sorted = samples.dropFirst(samples.count / 10).sorted()
    func percentile(_ p: Double) -> Double { sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))] }
    return (percentile(0.50), percentile(0.99), percentile(0.999))
}

/// The same produce-to-consumer latency for a raw librdkafka loop (single-message consume,
/// the send time found in the value's bytes): what librdkafka and the mock cost alone.
func rawLatency(bootstrap: String, topic: String, count: Int, rate: Int) -> (Double, Double, Double) {
    let handle = rawHandle(
        RD_KAFKA_CONSUMER,
        [
            ("bootstrap.servers", bootstrap), ("group.id", "raw-latency-\(UUID())"), ("enable.auto.commit", "false"),
            ("fetch.wait.max.ms", "1"), ("log_level", "3"),
        ])
    rd_kafka_poll_set_consumer(handle)
    let list = rd_kafka_topic_partition_list_new(1)!
    rd_kafka_topic_partition_list_add(list, topic, 0).pointee.offset = Int64(RD_KAFKA_OFFSET_END)
    rd_kafka_assign(handle, list)
    rd_kafka_topic_partition_list_destroy(list)
    let queue = rd_kafka_queue_get_consumer(handle)
    // Ready before the first event is sent: the end offset looked up and the fetcher waiting.
    var position: Int64 = -1
    let ready = ContinuousClock.now
    while position < 0 && ContinuousClock.now - ready < .seconds(10) {
        if let message = rd_kafka_consume_queue(queue, 10) { rd_kafka_message_destroy(message) }
        let positions = rd_kafka_topic_partition_list_new(1)!
        rd_kafka_topic_partition_list_add(positions, topic, 0)
        rd_kafka_position(handle, positions)
        position = positions.pointee.elems[0].offset
        rd_kafka_topic_partition_list_destroy(positions)
    }
    let producer = paceProducer(bootstrap: bootstrap, topic: topic, count: count, rate: rate)
    let marker = Array("\"sent_ns\":\"".utf8)
    var samples: [Double] = []
    samples.reserveCapacity(count)
    while samples.count < count {
        guard let message = rd_kafka_consume_queue(queue, 1000) else { continue }
        defer { rd_kafka_message_destroy(message) }
        guard message.pointee.err == RD_KAFKA_RESP_ERR_NO_ERROR, let payload = message.pointee.payload else { continue }
        let bytes = UnsafeRawBufferPointer(start: payload, count: message.pointee.len)
        guard let range = bytes.firstRange(of: marker) else { continue }
        var sent: UInt64 = 0
        for byte in bytes[range.upperBound...] {
            guard byte >= 0x30 && byte <= 0x39 else { break }
            sent = sent * 10 + UInt64(byte - 0x30)
        }
        samples.append(Double(monotonicNanoseconds() - sent) / 1_000_000)
    }
    while !producer.isFinished { usleep(1000) }
    rd_kafka_queue_destroy(queue)
    rd_kafka_consumer_close(handle)
    rd_kafka_destroy(handle)
    return percentiles(samples)
}

/// Time from cancelling the task that iterates to the consumer closed (committed, group left).
nonisolated func shutdown(bootstrap: String, topic: String) async throws -> Double {
    var configuration = consumerConfiguration(bootstrap)
    configuration.groupID = "bench-shutdown-\(UUID())"
    let consumer = try WorkflowEventConsumer(configuration: configuration)
    let reading = Task {
        var count = 0
        for try await _ in consumer.events(topics: [topic]) { count += 1 }
        return count
    }
    while await consumer.statistics.eventsDelivered < 1_000 { try await Task.sleep(for: .milliseconds(5)) }
    let cancelled = ContinuousClock.now
    reading.cancel()
    _ = await reading.result
    while await !consumer.isClosed { try await Task.sleep(for: .microseconds(200)) }
    return seconds(ContinuousClock.now - cancelled) * 1000
}

nonisolated func run(_ options: Options) async throws {
    if options.only == "decode" {
        // No cluster: the documents alone, for profiling the decoder.
        let documents = try SampleEvents.make(count: options.events, workflows: 20_000).map { try $0.jsonBytes() }
        var rates: [Double] = []
        var msgspecRates: [Double] = []
        var allocations = 0
        for _ in 0..<options.repetitions {
            let before = malloc_counter_allocations()
            rates.append(try decodeLoop(documents))
            allocations += Int(malloc_counter_allocations() - before)
            // Interleaved, so that both see the same moments of a shared machine.
            if let script = options.python { msgspecRates.append(try msgspecDecode(script: script, documents: documents)) }
        }
        let perEvent = Double(allocations) / Double(options.events * options.repetitions)
        print(String(format: "decode: %.0f events/s, %.2f allocations/event", median(rates), perEvent))
        if !msgspecRates.isEmpty {
            print(String(format: "msgspec decode: %.0f events/s; Swift × msgspec: %.2f", median(msgspecRates), median(rates) / median(msgspecRates)))
        }
        return
    }
    let cluster = try MockKafkaCluster()
    defer { cluster.shutdown() }
    let topic = "bench"
    try cluster.createTopic(topic, partitions: options.partitions)
    // Many workflows, so that the keys spread the events evenly over the partitions.
    let events = SampleEvents.make(count: options.events, workflows: 20_000)
    let documents = try events.map { try $0.jsonBytes() }
    let averageSize = documents.reduce(0) { $0 + $1.count } / documents.count
    // Large producer batches: the 2.0.2 mock answers a fetch with one producer batch per
    // partition, so small batches would make its fetch round trips the limit of every loop.
    let producer = try WorkflowEventProducer(
        configuration: .init(
            bootstrapServers: cluster.bootstrapServers, linger: .milliseconds(100),
            properties: ["log_level": "3", "batch.num.messages": "10000", "batch.size": "4000000"]))
    let reports = try await producer.send(events, to: topic)
    await producer.close()
    // Every event must be on the cluster before anything is timed.
    let highWatermarks = Dictionary(grouping: reports, by: \.partition).mapValues { ($0.map(\.offset).max() ?? -1) + 1 }
    let stored = highWatermarks.values.reduce(0, +)
    guard stored == Int64(options.events), Set(reports.map { "\($0.partition):\($0.offset)" }).count == options.events else {
        fatalError("the producer reported \(stored) offsets for \(options.events) events")
    }
    let checker = rawHandle(RD_KAFKA_CONSUMER, [("bootstrap.servers", cluster.bootstrapServers), ("log_level", "3")])
    let deleted = deletedMessages(checker, topic: topic, partitions: options.partitions)
    rd_kafka_destroy(checker)
    guard deleted == 0 else {
        fatalError(
            "the mock cluster has already deleted \(deleted) of the \(options.events) events (its retention): use more partitions or fewer events")
    }
    print(
        "\(options.events) events of \(averageSize) bytes on \(options.partitions) partitions; librdkafka \(String(cString: rd_kafka_version_str())); median of \(options.repetitions)"
    )

    // Each loop's rate, and the heap allocations of the whole process during it per event.
    var rates: [String: [Double]] = [:]
    var allocations: [String: [Double]] = [:]
    /// CPU time of the whole process (every thread, the mock cluster's included) per event, µs.
    var cpu: [String: [Double]] = [:]
    func runs(_ name: String) -> Bool { options.only == nil || options.only == name }
    func measured(_ name: String, _ body: () async throws -> Double) async rethrows {
        guard runs(name) else { return }
        let before = malloc_counter_allocations()
        let cpuBefore = processCPUSeconds()
        let rate = try await body()
        let after = malloc_counter_allocations()
        cpu[name, default: []].append((processCPUSeconds() - cpuBefore) / Double(options.events) * 1e6)
        rates[name, default: []].append(rate)
        allocations[name, default: []].append(Double(after - before) / Double(options.events))
    }
    let bootstrap = cluster.bootstrapServers
    if options.only == "memory" {
        let raw = try measureMemory("raw", bootstrap: bootstrap, topic: topic, count: options.events, partitions: options.partitions)
        let stream = try measureMemory("stream", bootstrap: bootstrap, topic: topic, count: options.events, partitions: options.partitions)
        print(String(format: "peak resident memory: raw loop %.0f MiB, stream %.0f MiB (%.2f ×)", raw, stream, stream / raw))
        return
    }
    for _ in 0..<options.repetitions {
        await measured("limit") { rawLoop(bootstrap: bootstrap, topic: topic, partitions: options.partitions, count: options.events) }
        try await measured("decode") { try decodeLoop(documents) }
        try await measured("stream") { try await streamLoop(bootstrap: bootstrap, topic: topic, count: options.events) }
        try await measured("main-actor") { try await mainActorStreamLoop(bootstrap: bootstrap, topic: topic, count: options.events) }
        try await measured("callback") { try await callbackLoop(bootstrap: bootstrap, topic: topic, count: options.events) }
        try await measured("poll") { try await pollLoop(bootstrap: bootstrap, topic: topic, count: options.events) }
        try await measured("batches") { try await batchesLoop(bootstrap: bootstrap, topic: topic, count: options.events) }
        try await measured("main-actor-batches") { try await mainActorBatchesLoop(bootstrap: bootstrap, topic: topic, count: options.events) }
        try await measured("process") { try await processLoop(bootstrap: bootstrap, topic: topic, count: options.events) }
        try await measured("process-16") { try await processLoop(bootstrap: bootstrap, topic: topic, count: options.events, concurrency: 16) }
        // The Python peers in the same repetition, so that every row sees the same moments of
        // a shared machine.
        if let script = options.python, options.only == nil {
            for validator in ["none", "msgspec", "pydantic"] {
                rates["python-\(validator)", default: []].append(
                    try pythonLoop(
                        script: script, bootstrap: bootstrap, topic: topic, count: options.events,
                        partitions: options.partitions, validator: validator))
            }
            rates["msgspec-decode", default: []].append(try msgspecDecode(script: script, documents: documents))
        }
    }
    if let only = options.only, only != "latency" {
        print(
            String(
                format: "%@: %.0f events/s, %.2f allocations/event, %.2f µs of CPU/event", only as NSString, median(rates[only] ?? [0]),
                median(allocations[only] ?? [0]), median(cpu[only] ?? [0])))
        return
    }
    if options.only == nil {
        try printThroughput()
    }
    func printThroughput() throws {
        let limitRate = median(rates["limit"]!)
        let limitAllocations = median(allocations["limit"]!)
        let decodeAllocations = median(allocations["decode"]!)
        print("| what | events/s | × limit | allocations/event | beyond librdkafka's and the event's own | CPU µs/event (all threads) |")
        print("| --- | --- | --- | --- | --- | --- |")
        for (name, label) in [
            ("limit", "limit: raw librdkafka loop"), ("decode", "decode only (no Kafka)"),
            ("stream", "stream: for try await events()"), ("main-actor", "the same loop on the main actor"),
            ("callback", "callback: consumeEvents"),
            ("poll", "poll(500) + event()"), ("batches", "batches(maxCount: 500)"),
            ("main-actor-batches", "batches(maxCount: 500) on the main actor"),
            ("process", "process(maxConcurrency: 1), empty handler"),
            ("process-16", "process(maxConcurrency: 16), empty handler"),
        ] {
            let rate = median(rates[name]!)
            let perEvent = median(allocations[name]!)
            let ratio = name == "decode" ? "-" : String(format: "%.2f", rate / limitRate)
            let beyond =
                ["stream", "main-actor", "callback", "poll", "batches", "main-actor-batches", "process", "process-16"].contains(name)
                ? String(format: "%.2f", perEvent - limitAllocations - decodeAllocations) : "-"
            let cpuPerEvent = name == "decode" ? "-" : String(format: "%.2f", median(cpu[name]!))
            print(
                String(
                    format: "| %@ | %.0f | %@ | %.2f | %@ | %@ |", label as NSString, rate, ratio as NSString, perEvent, beyond as NSString,
                    cpuPerEvent as NSString))
        }
        if options.python != nil {
            for (name, label) in [
                ("python-none", "Python confluent-kafka, no validation"),
                ("python-msgspec", "Python confluent-kafka + msgspec"),
                ("python-pydantic", "Python confluent-kafka + Pydantic"),
            ] {
                let rate = median(rates[name]!)
                print(String(format: "| %@ | %.0f | %.2f | - | - | - |", label as NSString, rate, rate / limitRate))
            }
            print(String(format: "| msgspec decode only (same documents, no Kafka) | %.0f | - | - | - | - |", median(rates["msgspec-decode"]!)))
            let stream = median(rates["stream"]!)
            print(
                String(
                    format: "stream ÷ Python with msgspec: %.2f×; ÷ Python with Pydantic: %.2f×", stream / median(rates["python-msgspec"]!),
                    stream / median(rates["python-pydantic"]!)))
            print(String(format: "decode only ÷ msgspec decode only: %.2f×", median(rates["decode"]!) / median(rates["msgspec-decode"]!)))
            print(
                String(
                    format: "batches ÷ Python with msgspec: %.2f×; callback ÷ stream: %.2f×; process ÷ stream: %.2f×",
                    median(rates["batches"]!) / median(rates["python-msgspec"]!), median(rates["callback"]!) / stream,
                    median(rates["process"]!) / stream))
        }

        // Peak memory, each in a process of its own.
        let rawPeak = try measureMemory("raw", bootstrap: bootstrap, topic: topic, count: options.events, partitions: options.partitions)
        let streamPeak = try measureMemory("stream", bootstrap: bootstrap, topic: topic, count: options.events, partitions: options.partitions)
        print("")
        print("| peak resident memory while consuming \(options.events) events | MiB |")
        print("| --- | --- |")
        print(String(format: "| raw librdkafka loop (librdkafka's prefetch queue) | %.0f |", rawPeak))
        print(String(format: "| stream: for try await events() | %.0f |", streamPeak))
        print(
            String(
                format: "memory ≤ 1.5 × the raw loop's: %.2f × (%@)", streamPeak / rawPeak,
                (streamPeak <= 1.5 * rawPeak ? "met" : "not met") as NSString))
    }

    // Latency at a steady 10,000 events/s, and shutdown.
    let latencyTopic = "bench-latency"
    try cluster.createTopic(latencyTopic, partitions: 1)
    var p50: [Double] = []
    var p99: [Double] = []
    var p999: [Double] = []
    var shutdowns: [Double] = []
    var rawP50: [Double] = []
    var rawP99: [Double] = []
    var rawP999: [Double] = []
    for repetition in 0..<options.repetitions {
        let topicName = "\(latencyTopic)-\(repetition)"
        try cluster.createTopic(topicName, partitions: 1)
        let (a, b, c) = try await latency(bootstrap: cluster.bootstrapServers, topic: topicName, count: 20_000, rate: 10_000)
        p50.append(a)
        p99.append(b)
        p999.append(c)
        let rawTopic = "\(latencyTopic)-raw-\(repetition)"
        try cluster.createTopic(rawTopic, partitions: 1)
        let (d, e, f) = rawLatency(bootstrap: cluster.bootstrapServers, topic: rawTopic, count: 20_000, rate: 10_000)
        rawP50.append(d)
        rawP99.append(e)
        rawP999.append(f)
        shutdowns.append(try await shutdown(bootstrap: cluster.bootstrapServers, topic: topic))
    }
    print("")
    print(
        "| latency at 10,000 events/s, produce to loop body (fetch.wait.max.ms 1; 20,000 events, the first 2,000 are warm-up) | stream, ms | raw librdkafka loop, ms |"
    )
    print("| --- | --- | --- |")
    print(String(format: "| p50 | %.2f | %.2f |", median(p50), median(rawP50)))
    print(String(format: "| p99 | %.2f | %.2f |", median(p99), median(rawP99)))
    print(String(format: "| p99.9 | %.2f | %.2f |", median(p999), median(rawP999)))
    print("")
    print(String(format: "shutdown, cancel to closed, with a group: %.1f ms", median(shutdowns)))
    if options.only != nil { return }

    // Ordered concurrent processing: what concurrency buys a handler that waits 10 ms.
    let orderedTopic = "bench-ordered"
    try cluster.createTopic(orderedTopic, partitions: 16)
    let orderedProducer = try WorkflowEventProducer(
        configuration: .init(bootstrapServers: cluster.bootstrapServers, properties: ["log_level": "3"]))
    _ = try await orderedProducer.send(SampleEvents.make(count: 6_400, seed: 9, workflows: 256), to: orderedTopic)
    await orderedProducer.close()
    print("")
    print("process(topics:maxConcurrency:) with a 10 ms handler, 256 workflows on 16 partitions; median of \(options.repetitions)")
    print("| concurrency | events/s | × concurrency 1 |")
    print("| --- | --- | --- |")
    var baseline = 0.0
    for (concurrency, count) in [(1, 200), (4, 800), (16, 3_200), (64, 6_400)] {
        var rates: [Double] = []
        for _ in 0..<options.repetitions {
            rates.append(try await orderedLoop(bootstrap: cluster.bootstrapServers, topic: orderedTopic, count: count, concurrency: concurrency))
        }
        let rate = median(rates)
        if concurrency == 1 { baseline = rate }
        print(String(format: "| %11d | %8.0f | %15.1f |", concurrency, rate, rate / baseline))
    }

    // The targets, against this run's figures.
    func verdict(_ met: Bool, _ shortBy: String) -> String { met ? "met" : "not met: \(shortBy)" }
    func ratioRow(_ label: String, _ ratio: Double, _ target: Double) {
        print(
            String(
                format: "| %@ | %.2f × | %@ |", label as NSString, ratio,
                verdict(ratio >= target, String(format: "%.2f times short", target / ratio)) as NSString))
    }
    let stream = median(rates["stream"]!)
    print("")
    print("| target | this run | |")
    print("| --- | --- | --- |")
    if options.python != nil {
        ratioRow("decode ≥ 2 × msgspec's, same documents", median(rates["decode"]!) / median(rates["msgspec-decode"]!), 2)
        ratioRow("stream ≥ 1.0 × Python confluent-kafka + msgspec", stream / median(rates["python-msgspec"]!), 1)
    }
    ratioRow("stream ≥ 0.7 × raw librdkafka loop", stream / median(rates["limit"]!), 0.7)
    ratioRow("process(maxConcurrency: 1) ≥ 0.7 × stream", median(rates["process"]!) / stream, 0.7)
    ratioRow("process(maxConcurrency: 16) ≥ 0.7 × stream", median(rates["process-16"]!) / stream, 0.7)
    ratioRow("batches on the main actor ≥ 0.8 × stream off it", median(rates["main-actor-batches"]!) / stream, 0.8)
    let beyond = median(allocations["stream"]!) - median(allocations["limit"]!) - median(allocations["decode"]!)
    print(
        String(
            format: "| ≤ 1 allocation per event beyond librdkafka's and the event's own (stream) | %.2f | %@ |", beyond,
            verdict(beyond <= 1, String(format: "%.2f over", beyond - 1)) as NSString))
    print(
        String(
            format: "| p99 latency < 5 ms at 10,000 events/s | %.2f ms | %@ |", median(p99),
            verdict(median(p99) < 5, String(format: "%.2f ms over", median(p99) - 5)) as NSString))
    print(
        String(
            format: "| shutdown < 100 ms | %.1f ms | %@ |", median(shutdowns),
            verdict(median(shutdowns) < 100, String(format: "%.1f ms over", median(shutdowns) - 100)) as NSString))
}

/// Peak resident memory of this process so far, in MiB: the kernel's VmHWM (getrusage's
/// maxrss would carry the parent's peak over into a child spawned with vfork).
func peakResidentMiB() -> Double {
    let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
    for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
        let kib = line.split(separator: " ").compactMap { Double($0) }.first ?? 0
        return kib / 1024
    }
    return 0
}

/// The child process of the memory measurement: consumes `count` events of `topic` with the
/// stream (or the raw loop) and prints its peak resident memory.
nonisolated func memoryChild(_ arguments: [String]) async throws {
    guard arguments.count == 6, let count = Int(arguments[4]), let partitions = Int(arguments[5]) else {
        FileHandle.standardError.write(Data("usage: workflow-events-benchmarks --memory-child stream|raw BOOTSTRAP TOPIC COUNT PARTITIONS\n".utf8))
        exit(2)
    }
    let (mode, bootstrap, topic) = (arguments[1], arguments[2], arguments[3])
    if mode == "raw" {
        _ = rawLoop(bootstrap: bootstrap, topic: topic, partitions: partitions, count: count)
    } else {
        _ = try await streamLoop(bootstrap: bootstrap, topic: topic, count: count)
    }
    print("peak-resident-mib \(peakResidentMiB())")
}

/// Runs a child process and returns the number on its output line that starts with `prefix`.
func childFigure(_ executable: URL, _ arguments: [String], prefix: String, hint: String = "") throws -> Double {
    let child = Process()
    child.executableURL = executable
    child.arguments = arguments
    let output = Pipe()
    child.standardOutput = output
    try child.run()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    child.waitUntilExit()
    let text = String(decoding: data, as: UTF8.self)
    guard child.terminationStatus == 0, let line = text.split(separator: "\n").first(where: { $0.hasPrefix(prefix) }),
        let value = Double(line.dropFirst(prefix.count))
    else {
        fatalError("\(executable.path) \(arguments.joined(separator: " ")) failed (status \(child.terminationStatus)): \(text)\(hint)")
    }
    return value
}

/// Runs Benchmarks/python/consume.py on the same cluster and topic, validating with
/// `validator` (none, msgspec, pydantic); its events/s.
func pythonLoop(script: String, bootstrap: String, topic: String, count: Int, partitions: Int, validator: String) throws -> Double {
    try childFigure(
        URL(fileURLWithPath: "/usr/bin/env"),
        ["python3", script, bootstrap, topic, String(count), String(partitions), "--validator", validator],
        prefix: "events/s ", hint: "; it needs `pip install confluent-kafka pydantic msgspec`")
}

/// msgspec's decoding of the same documents as the decode-only loop, without Kafka.
func msgspecDecode(script: String, documents: [[UInt8]]) throws -> Double {
    let file = FileManager.default.temporaryDirectory.appendingPathComponent("workflow-events-documents-\(getpid()).jsonl")
    var lines: [UInt8] = []
    for document in documents {
        lines += document
        lines.append(UInt8(ascii: "\n"))
    }
    try Data(lines).write(to: file)
    defer { try? FileManager.default.removeItem(at: file) }
    return try childFigure(
        URL(fileURLWithPath: "/usr/bin/env"), ["python3", script, "--decode-only", file.path],
        prefix: "events/s ", hint: "; it needs `pip install msgspec`")
}

/// Runs the memory measurement in a child process, so that its peak is the consumer's alone.
func measureMemory(_ mode: String, bootstrap: String, topic: String, count: Int, partitions: Int) throws -> Double {
    try childFigure(
        URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath(),
        ["--memory-child", mode, bootstrap, topic, String(count), String(partitions)],
        prefix: "peak-resident-mib ")
}

LoggingSystem.bootstrap { label in
    var handler = StreamLogHandler.standardError(label: label)
    handler.logLevel = .warning
    return handler
}
if CommandLine.arguments.count > 1 && CommandLine.arguments[1] == "--memory-child" {
    try await memoryChild(Array(CommandLine.arguments.dropFirst()))
} else {
    try await run(Options(CommandLine.arguments))
}
