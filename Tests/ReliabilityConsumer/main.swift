// A consumer for the reliability tests to run as a child process, kill and restart.
//
// Appends one line per processed event to --output, written with one write(2) so that a
// SIGKILL loses nothing already processed:  EVENT_ID PARTITION OFFSET MONOTONIC_NS
// Ends after --idle-timeout without events, or on SIGTERM (closing the consumer cleanly);
// then prints one summary line:  processed=N peak_rss_kb=K rebalances=R
//
// With --ordered N it reads through process(maxConcurrency: N) instead, and writes
// "S EVENT_ID" when a handler starts and "F EVENT_ID" when it finishes; it ends once no
// handler has finished for --idle-timeout (after the first one).
//
// With --crash-after N it kills itself with SIGKILL once it has processed (finished) N
// events, after writing "KILL MONOTONIC_NS": a crash at a point set by work done, not by
// how fast this machine is.
//
// With --subscribe-timeout-ms N it only subscribes, with a connection timeout of N ms, and
// prints "subscribe seconds=S threw=KIND retriable=B" (S measured here, where no other work
// waits for this process's threads), then ends.
import Dispatch
import Foundation
import Logging
import Synchronization
import TestSupport
import WorkflowEvents

struct Options {
    var bootstrapServers = ""
    var topic = "workflow-events"
    var group = "reliability"
    var output = ""
    var processMicroseconds = 0
    var slowEvery = 0
    var slowMilliseconds = 0
    var autoCommitMilliseconds = 5000
    var maxPollIntervalMilliseconds = 300_000
    var idleSeconds = 5.0
    var ordered = 0
    var crashAfter = 0
    var subscribeTimeoutMilliseconds = 0
    var properties: [String: String] = [:]

    init(_ arguments: [String]) throws {
        var iterator = arguments.dropFirst().makeIterator()
        func value(_ name: String) throws -> String {
            guard let value = iterator.next() else { throw ChildFailure("\(name) needs a value") }
            return value
        }
        func number(_ name: String) throws -> Int {
            guard let number = Int(try value(name)) else { throw ChildFailure("\(name) needs a whole number") }
            return number
        }
        while let argument = iterator.next() {
            switch argument {
            case "--bootstrap-servers": bootstrapServers = try value(argument)
            case "--topic": topic = try value(argument)
            case "--group": group = try value(argument)
            case "--output": output = try value(argument)
            case "--process-us": processMicroseconds = try number(argument)
            case "--slow-every": slowEvery = try number(argument)
            case "--slow-ms": slowMilliseconds = try number(argument)
            case "--auto-commit-ms": autoCommitMilliseconds = try number(argument)
            case "--max-poll-interval-ms": maxPollIntervalMilliseconds = try number(argument)
            case "--idle-timeout": idleSeconds = Double(try value(argument)) ?? 5
            case "--ordered": ordered = try number(argument)
            case "--crash-after": crashAfter = try number(argument)
            case "--subscribe-timeout-ms": subscribeTimeoutMilliseconds = try number(argument)
            case "--property":
                let pair = try value(argument).split(separator: "=", maxSplits: 1).map(String.init)
                guard pair.count == 2 else { throw ChildFailure("--property needs NAME=VALUE") }
                properties[pair[0]] = pair[1]
            default: throw ChildFailure("unknown argument \(argument)")
            }
        }
        if bootstrapServers.isEmpty || (output.isEmpty && subscribeTimeoutMilliseconds == 0) {
            throw ChildFailure("--bootstrap-servers and --output are required")
        }
    }
}

struct ChildFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Peak resident memory of this process, in KiB (VmHWM).
func peakResidentKilobytes() -> Int {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return -1 }
    for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
        return Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]) ?? -1
    }
    return -1
}

nonisolated func run(_ options: Options) async throws -> (processed: Int, rebalances: Int) {
    let descriptor = open(options.output, O_WRONLY | O_CREAT | O_APPEND, 0o644)
    guard descriptor >= 0 else { throw ChildFailure("cannot open \(options.output)") }
    defer { close(descriptor) }
    var properties = [
        "session.timeout.ms": "6000", "heartbeat.interval.ms": "500",
        "max.poll.interval.ms": String(options.maxPollIntervalMilliseconds),
    ]
    for (key, value) in options.properties { properties[key] = value }
    // RELIABILITY_DEBUG=<librdkafka debug contexts> logs at debug level, librdkafka's too.
    let debug = ProcessInfo.processInfo.environment["RELIABILITY_DEBUG"]
    if let debug { properties["debug"] = debug }
    let configuration = WorkflowEventConsumer.Configuration(
        bootstrapServers: options.bootstrapServers, groupID: options.group,
        autoCommitInterval: .milliseconds(Int64(options.autoCommitMilliseconds)), properties: properties)
    var logger = Logger(label: "reliability-consumer")
    logger.logLevel = debug == nil ? .info : .debug
    let consumer = try WorkflowEventConsumer(configuration: configuration, logger: logger)
    if options.ordered > 0 {
        return try await runOrdered(options, consumer: consumer, descriptor: descriptor)
    }
    var processed = 0
    let idle = Duration.milliseconds(Int64(options.idleSeconds * 1000))
    for try await message in consumer.messages(topics: [options.topic], idleTimeout: idle) {
        if options.processMicroseconds > 0 {
            try? await Task.sleep(for: .microseconds(options.processMicroseconds))
        }
        processed += 1
        if options.slowEvery > 0, processed % options.slowEvery == 0 {
            try? await Task.sleep(for: .milliseconds(options.slowMilliseconds))
        }
        append("\(message.event.eventID) \(message.partition) \(message.offset) \(monotonicNanoseconds())\n", to: descriptor)
        if processed == options.crashAfter { crash(descriptor) }
    }
    let rebalances = await consumer.statistics.rebalances
    await consumer.close()
    return (processed, rebalances)
}

/// Writes "KILL MONOTONIC_NS" and kills this process with SIGKILL: nothing runs after it.
func crash(_ descriptor: Int32) -> Never {
    append("KILL \(monotonicNanoseconds())\n", to: descriptor)
    kill(getpid(), SIGKILL)
    fatalError("SIGKILL did not end the process")
}

/// Appends one line with a single write(2).
func append(_ line: String, to descriptor: Int32) {
    _ = line.utf8CString.withUnsafeBufferPointer { write(descriptor, $0.baseAddress, $0.count - 1) }
}

/// Handles events through `process`, logging each start and finish, until no handler has
/// finished for the idle timeout.
nonisolated func runOrdered(
    _ options: Options, consumer: WorkflowEventConsumer, descriptor: Int32
) async throws -> (processed: Int, rebalances: Int) {
    let finished = FinishCount()
    let work = Task {
        try await consumer.process(topics: [options.topic], maxConcurrency: options.ordered) { event in
            append("S \(event.eventID)\n", to: descriptor)
            try? await Task.sleep(for: .microseconds(Int64.random(in: 0...Int64(max(1, options.processMicroseconds)))))
            append("F \(event.eventID)\n", to: descriptor)
            if finished.add() == options.crashAfter { crash(descriptor) }
        }
    }
    let idle = Duration.milliseconds(Int64(options.idleSeconds * 1000))
    try await withTaskCancellationHandler {
        // Idle means owning partitions and finishing nothing (joining and rebalancing take
        // seconds): a run left with nothing to do ends too.
        var last = (count: 0, at: ContinuousClock.now)
        while !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(100))
            let count = finished.value
            let unassigned = await consumer.assignment.isEmpty
            if count != last.count || unassigned {
                last = (count, .now)
            } else if ContinuousClock.now - last.at >= idle {
                break
            }
        }
        work.cancel()
        try await work.value
    } onCancel: {
        work.cancel()
    }
    return (finished.value, await consumer.statistics.rebalances)
}

final class FinishCount: Sendable {
    private let count = Mutex(0)
    /// Adds one and returns the new count.
    func add() -> Int {
        count.withLock { count in
            count += 1
            return count
        }
    }
    var value: Int { count.withLock { $0 } }
}

/// Runs the consumer in a task that SIGTERM cancels (the handler must not be isolated to
/// the main actor: it runs on a dispatch queue).
nonisolated func runUntilTerminated(_ options: Options) async throws -> (processed: Int, rebalances: Int) {
    let work = Task { try await run(options) }
    signal(SIGTERM, SIG_IGN)
    let source = DispatchSource.makeSignalSource(signal: SIGTERM, queue: .global())
    source.setEventHandler { work.cancel() }
    source.resume()
    defer { source.cancel() }
    return try await work.value
}

/// Subscribes once and says how long it took to succeed or throw, and what it threw.
nonisolated func timeSubscribe(_ options: Options) async throws {
    let consumer = try WorkflowEventConsumer(
        configuration: .init(
            bootstrapServers: options.bootstrapServers, groupID: options.group,
            connectionTimeout: .milliseconds(Int64(options.subscribeTimeoutMilliseconds))))
    let started = ContinuousClock.now
    var outcome = "threw=nothing"
    do {
        try await consumer.subscribe([options.topic])
    } catch let error as KafkaError {
        outcome = "threw=KafkaError retriable=\(error.isRetriable) message=\(error.message)"
    } catch {
        outcome = "threw=\(type(of: error)) message=\(error)"
    }
    let elapsed = ContinuousClock.now - started
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    print("subscribe seconds=\(seconds) \(outcome)")
    await consumer.close()
}

do {
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = ProcessInfo.processInfo.environment["RELIABILITY_DEBUG"] == nil ? .info : .debug
        return handler
    }
    let options = try Options(CommandLine.arguments)
    if options.subscribeTimeoutMilliseconds > 0 {
        try await timeSubscribe(options)
        exit(0)
    }
    let (processed, rebalances) = try await runUntilTerminated(options)
    print("processed=\(processed) peak_rss_kb=\(peakResidentKilobytes()) rebalances=\(rebalances)")
} catch {
    FileHandle.standardError.write(Data("reliability-consumer: \(error)\n".utf8))
    exit(1)
}
