import ArgumentParser
import Foundation
import Logging
import WorkflowEvents
import WorkflowEventsTesting

struct Produce: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Validate events against the contract and send them to a topic.",
        discussion: """
            With --file, each line is one event in the contract's JSON form (- reads stdin); blank \
            lines are ignored. Invalid lines are reported on stderr with their line numbers and the \
            others are sent; the exit status is then 1. Events are keyed by workflow_id.
            """
    )

    @OptionGroup var cluster: ClusterOptions

    @Option(help: "The topic to send to.")
    var topic: String

    @Option(help: "A JSON Lines file of events, or - for stdin.")
    var file: String?

    @Option(help: "Send this many generated sample events instead of a file.")
    var sample: Int?

    @Option(help: "The seed of the sample generator: the same seed gives the same events.")
    var seed: UInt64 = 42

    @Option(help: "How many events to send before waiting for their delivery reports.")
    var batchSize: Int = 10_000

    func validate() throws {
        switch (file, sample) {
        case (nil, nil): throw ValidationError("give --file PATH or --sample N")
        case (.some, .some): throw ValidationError("give either --file or --sample, not both")
        default: break
        }
        if let sample, sample < 1 { throw ValidationError("--sample must be at least 1") }
        if batchSize < 1 { throw ValidationError("--batch-size must be at least 1") }
        if topic.isEmpty { throw ValidationError("--topic is empty") }
    }

    func run() async throws {
        let properties = try cluster.clientProperties()
        let logger = cluster.logging.bootstrap(label: "workflow-events.produce", redacting: properties)
        try await reportingFailures("produce", properties: properties) {
            let summary = try await cancellingOnInterrupt { [self] in try await produce(logger: logger, connection: cluster.connection(properties)) }
            var line = "sent \(summary.sent) event\(summary.sent == 1 ? "" : "s") to \(topic)"
            if !summary.invalidLines.isEmpty {
                let shown = summary.invalidLines.prefix(20).map(String.init).joined(separator: ", ")
                let more = summary.invalidLines.count > 20 ? ", ..." : ""
                line += "; skipped \(summary.invalidLines.count) invalid line\(summary.invalidLines.count == 1 ? "" : "s") (\(shown)\(more))"
            }
            printError(line)
            if !summary.invalidLines.isEmpty { throw ExitCode.failure }
        }
    }

    struct Summary: Sendable {
        var sent = 0
        var invalidLines: [Int] = []
    }

    @Sendable nonisolated func produce(logger: Logger, connection: ClusterOptions.Connection) async throws -> Summary {
        let producer = try WorkflowEventProducer(
            configuration: .init(
                bootstrapServers: connection.bootstrapServers, clientID: "workflow-events-cli",
                deliveryTimeout: cluster.connectionTimeout, properties: connection.properties),
            logger: logger)
        var summary = Summary()
        let progress = Progress(total: sample, enabled: standardErrorIsTerminal)
        do {
            var batch: [WorkflowEvent] = []
            batch.reserveCapacity(batchSize)
            func sendBatch() async throws {
                guard !batch.isEmpty else { return }
                summary.sent += try await producer.send(batch, to: topic).count
                batch.removeAll(keepingCapacity: true)
                progress.update(summary.sent)
            }
            if let sample {
                var generator = SampleEvents.Generator(seed: seed)
                for sequence in 0..<sample {
                    try Task.checkCancellation()
                    batch.append(generator.next(sequence: sequence))
                    if batch.count == batchSize { try await sendBatch() }
                }
            } else if let file {
                let name = file == "-" ? "stdin" : file
                let reader = try LineReader(path: file)
                var lineNumber = 0
                while let line = try reader.next() {
                    lineNumber += 1
                    if line.allSatisfy({ $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") || $0 == UInt8(ascii: "\r") }) {
                        continue
                    }
                    do {
                        batch.append(try WorkflowEvent(validatingJSON: line))
                    } catch {
                        summary.invalidLines.append(lineNumber)
                        printError("\(name):\(lineNumber): \(error)")
                        continue
                    }
                    if batch.count == batchSize { try await sendBatch() }
                    try Task.checkCancellation()
                }
            }
            try await sendBatch()
            progress.finish()
        } catch {
            progress.finish()
            await producer.close(timeout: .seconds(5))
            if let kafkaError = error as? KafkaError, kafkaError.code == .messageTimedOut {
                throw ToolFailure(
                    "no broker of '\(connection.bootstrapServers)' stored the events within \(cluster.connectTimeout) seconds (\(summary.sent) sent): \(kafkaError)"
                )
            }
            throw error
        }
        await producer.close()
        return summary
    }
}

/// A progress line on stderr, rewritten in place, when stderr is a terminal.
final class Progress: Sendable {
    let total: Int?
    let enabled: Bool

    init(total: Int?, enabled: Bool) {
        self.total = total
        self.enabled = enabled && (total ?? Int.max) >= 10_000
    }

    func update(_ sent: Int) {
        guard enabled else { return }
        let text = total.map { "sent \(sent)/\($0) events (\(sent * 100 / max($0, 1))%)" } ?? "sent \(sent) events"
        FileHandle.standardError.write(Data("\r\(text)".utf8))
    }

    func finish() {
        guard enabled else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
    }
}

/// Reads a file (or stdin) line by line in blocks, without loading it whole.
final class LineReader {
    private let handle: FileHandle
    private var buffer: [UInt8] = []
    private var start = 0
    private var atEnd = false

    init(path: String) throws {
        if path == "-" {
            handle = .standardInput
        } else {
            guard let opened = FileHandle(forReadingAtPath: path) else {
                throw ToolFailure("cannot open '\(path)' for reading: \(String(cString: strerror(errno)))")
            }
            handle = opened
        }
    }

    /// The next line without its newline, or nil at the end of the input.
    func next() throws -> [UInt8]? {
        while true {
            if let newline = buffer[start...].firstIndex(of: UInt8(ascii: "\n")) {
                let line = Array(buffer[start..<newline])
                start = newline + 1
                return line
            }
            if atEnd {
                guard start < buffer.count else { return nil }
                let line = Array(buffer[start...])
                start = buffer.count
                return line
            }
            buffer.removeFirst(start)
            start = 0
            let block = try handle.read(upToCount: 1 << 20) ?? Data()
            if block.isEmpty { atEnd = true } else { buffer.append(contentsOf: block) }
        }
    }
}
