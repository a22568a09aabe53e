import ArgumentParser
import Foundation
import Logging
import Synchronization
import WorkflowEvents

/// `workflow-events`: look at a topic, send test events, see a group's lag, or run an
/// embedded Kafka cluster, without writing code.
@main
struct WorkflowEventsTool: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "workflow-events",
        abstract: "Consume, produce and inspect workflow events on Kafka.",
        discussion: """
            --bootstrap-servers defaults to the bootstrap.servers of -X or --config, then
            $WORKFLOW_EVENTS_BOOTSTRAP_SERVERS, then localhost:9092.
            Events go to stdout; logs and errors go to stderr.
            """,
        subcommands: [Demo.self, Broker.self, Consume.self, Produce.self, Lag.self]
    )
}

/// Options of every command that talks to a cluster.
struct ClusterOptions: ParsableArguments {
    @Option(
        help:
            "Comma-separated host:port list (default: the properties' bootstrap.servers, then $WORKFLOW_EVENTS_BOOTSTRAP_SERVERS, then localhost:9092)."
    )
    var bootstrapServers: String?

    @Option(help: "Seconds to wait for the cluster (to connect, or to store a sent event) before giving up.")
    var connectTimeout: Double = 10

    @Option(
        name: [.customShort("X"), .customLong("property")],
        help: ArgumentHelp(
            "A librdkafka property such as security.protocol=SASL_SSL; repeat for several. Wins over --config. A value @FILE is read from FILE, env:NAME from the environment variable NAME.",
            valueName: "key=value"))
    var properties: [String] = []

    @Option(
        help: ArgumentHelp(
            "A librdkafka properties file: key=value lines, # comments (default: the file $WORKFLOW_EVENTS_CONFIG names).",
            valueName: "file"))
    var config: String?

    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        if !(connectTimeout > 0) { throw ValidationError("--connect-timeout must be a positive number of seconds") }
    }

    /// The librdkafka properties of the config file (or the environment's), then
    /// `--property`, secrets read from where they were named (once: a command's `run` calls
    /// it first); a bad one exits with status 64.
    func clientProperties() throws -> KafkaProperties {
        do {
            return try KafkaProperties(configFile: config, settings: properties)
        } catch let error as WorkflowEventsError {
            throw ValidationError(error.message)
        }
    }

    var connectionTimeout: Duration { .milliseconds(Int64(connectTimeout * 1000)) }

    /// Where to connect, and librdkafka's other properties.
    struct Connection: Sendable {
        /// `--bootstrap-servers`, else the properties' `bootstrap.servers`, else
        /// `$WORKFLOW_EVENTS_BOOTSTRAP_SERVERS`, else `localhost:9092`.
        let bootstrapServers: String
        /// The properties but `bootstrap.servers`.
        let properties: [String: String]
    }

    func connection(_ properties: KafkaProperties) -> Connection {
        var values = properties.values
        let fromProperties = values.removeValue(forKey: "bootstrap.servers")
        let fromEnvironment = ProcessInfo.processInfo.environment["WORKFLOW_EVENTS_BOOTSTRAP_SERVERS"]
        let servers = [bootstrapServers, fromProperties, fromEnvironment].compactMap { $0 }.first { !$0.isEmpty }
        return Connection(bootstrapServers: servers ?? "localhost:9092", properties: values)
    }
}

struct LoggingOptions: ParsableArguments {
    enum Level: String, ExpressibleByArgument, CaseIterable {
        case trace, debug, info, notice, warning, error, critical
    }

    @Option(help: "The least level of log lines written to stderr (librdkafka's connection errors are errors).")
    var logLevel: Level = .critical

    /// Sends every log line to stderr at the chosen level, with the values of the secret
    /// properties cut out, and returns the tool's logger.
    func bootstrap(label: String, redacting properties: KafkaProperties? = nil) -> Logger {
        let level = Logger.Level(rawValue: logLevel.rawValue) ?? .critical
        LoggingSystem.bootstrap { name in
            var handler = StreamLogHandler.standardError(label: name)
            handler.logLevel = level
            guard let properties else { return handler }
            return RedactingLogHandler(wrapped: handler, properties: properties)
        }
        return Logger(label: label)
    }
}

/// A failure the tool reports as one sentence on stderr, with exit status 1.
struct ToolFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Writes one line to stderr, unbuffered.
func printError(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}

/// Whether stderr is a terminal (progress lines are written only then).
var standardErrorIsTerminal: Bool { isatty(STDERR_FILENO) == 1 }

/// Runs a command's work; any error becomes one sentence on stderr and exit status 1,
/// never a stack trace. With `properties`, the sentence says where a property it names was
/// set, and shows no secret.
func reportingFailures(
    _ command: String, properties: KafkaProperties? = nil, _ body: () async throws -> Void
) async throws {
    do {
        try await body()
    } catch let exit as ExitCode {
        throw exit
    } catch {
        printError("workflow-events \(command): \(properties?.explain(error) ?? "\(error)")")
        throw ExitCode.failure
    }
}

/// A log handler that cuts the values of secret properties out of each line and its
/// metadata before the wrapped handler writes it.
struct RedactingLogHandler: LogHandler {
    var wrapped: StreamLogHandler
    let properties: KafkaProperties

    var logLevel: Logger.Level {
        get { wrapped.logLevel }
        set { wrapped.logLevel = newValue }
    }

    var metadata: Logger.Metadata {
        get { wrapped.metadata }
        set { wrapped.metadata = newValue }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { wrapped[metadataKey: key] }
        set { wrapped[metadataKey: key] = newValue }
    }

    func log(event: LogEvent) {
        var event = event
        event.message = "\(properties.redact("\(event.message)"))"
        event.metadata = event.metadata?.mapValues { .string(properties.redact("\($0)")) }
        wrapped.log(event: event)
    }
}

/// Runs `body` in a child task that SIGINT or SIGTERM cancels: the body's consumer then
/// commits and leaves its group. A second signal exits at once with status 130.
nonisolated func cancellingOnInterrupt<T: Sendable>(
    _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    let task = Task { try await body() }
    let signals = Atomic<Int>(0)
    let sources = [SIGINT, SIGTERM].map { number in
        signal(number, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
        source.setEventHandler {
            if signals.add(1, ordering: .relaxed).newValue > 1 { _exit(130) }
            task.cancel()
        }
        source.resume()
        return source
    }
    defer {
        for source in sources { source.cancel() }
    }
    return try await withTaskCancellationHandler {
        try await task.value
    } onCancel: {
        task.cancel()
    }
}
