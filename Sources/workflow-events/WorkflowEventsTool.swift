import ArgumentParser
import Foundation
import Logging
import Synchronization

/// `workflow-events`: look at a topic, send test events, see a group's lag, or run an
/// embedded Kafka cluster, without writing code.
@main
struct WorkflowEventsTool: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "workflow-events",
        abstract: "Consume, produce and inspect workflow events on Kafka.",
        discussion: """
            --bootstrap-servers defaults to $WORKFLOW_EVENTS_BOOTSTRAP_SERVERS, then localhost:9092.
            Events go to stdout; logs and errors go to stderr.
            """,
        subcommands: [Demo.self, Broker.self, Consume.self, Produce.self, Lag.self]
    )
}

/// Options of every command that talks to a cluster.
struct ClusterOptions: ParsableArguments {
    @Option(help: "Comma-separated host:port list (default: $WORKFLOW_EVENTS_BOOTSTRAP_SERVERS, then localhost:9092).")
    var bootstrapServers: String?

    @Option(help: "Seconds to wait for the cluster (to connect, or to store a sent event) before giving up.")
    var connectTimeout: Double = 10

    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        if !(connectTimeout > 0) { throw ValidationError("--connect-timeout must be a positive number of seconds") }
    }

    var connectionTimeout: Duration { .milliseconds(Int64(connectTimeout * 1000)) }

    /// The servers to use: the option, the environment, or the local default.
    var resolvedBootstrapServers: String {
        if let bootstrapServers, !bootstrapServers.isEmpty { return bootstrapServers }
        if let fromEnvironment = ProcessInfo.processInfo.environment["WORKFLOW_EVENTS_BOOTSTRAP_SERVERS"],
            !fromEnvironment.isEmpty
        {
            return fromEnvironment
        }
        return "localhost:9092"
    }
}

struct LoggingOptions: ParsableArguments {
    enum Level: String, ExpressibleByArgument, CaseIterable {
        case trace, debug, info, notice, warning, error, critical
    }

    @Option(help: "The least level of log lines written to stderr (librdkafka's connection errors are errors).")
    var logLevel: Level = .critical

    /// Sends every log line to stderr at the chosen level, and returns the tool's logger.
    func bootstrap(label: String) -> Logger {
        let level = Logger.Level(rawValue: logLevel.rawValue) ?? .critical
        LoggingSystem.bootstrap { name in
            var handler = StreamLogHandler.standardError(label: name)
            handler.logLevel = level
            return handler
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
/// never a stack trace.
func reportingFailures(_ command: String, _ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let exit as ExitCode {
        throw exit
    } catch {
        printError("workflow-events \(command): \(error)")
        throw ExitCode.failure
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
