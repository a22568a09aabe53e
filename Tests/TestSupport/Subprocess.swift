public import Foundation

/// The folder of the package's built products: the test binary lives there too.
public let productsDirectory = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()

/// What a finished child process left.
public struct ProcessOutput {
    public var status: Int32
    public var stdout: String
    public var stderr: String

    public var stdoutLines: [Substring] {
        stdout.split(separator: "\n", omittingEmptySubsequences: false).dropLast(stdout.hasSuffix("\n") ? 1 : 0).map { $0 }
    }
}

/// A child process of one of the package's executables, its output going to files so that no
/// pipe can fill and stall it.
public final class ChildProcess {
    public let process = Process()
    private let stdoutURL: URL
    private let stderrURL: URL
    public let name: String

    public init(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) throws {
        name = ([executable] + arguments).joined(separator: " ")
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("swe-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        stdoutURL = folder.appendingPathComponent("stdout")
        stderrURL = folder.appendingPathComponent("stderr")
        _ = FileManager.default.createFile(atPath: stdoutURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: stderrURL.path, contents: nil)
        process.executableURL = productsDirectory.appendingPathComponent(executable)
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env["WORKFLOW_EVENTS_BOOTSTRAP_SERVERS"] = nil
        for (key, value) in environment { env[key] = value }
        process.environment = env
        process.standardOutput = try FileHandle(forWritingTo: stdoutURL)
        process.standardError = try FileHandle(forWritingTo: stderrURL)
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    public var stdout: String { (try? String(contentsOf: stdoutURL, encoding: .utf8)) ?? "" }
    public var stderr: String { (try? String(contentsOf: stderrURL, encoding: .utf8)) ?? "" }

    public func signal(_ number: Int32) { kill(process.processIdentifier, number) }

    /// Waits until `condition` holds while the process runs, at most `timeout`. Throws, with
    /// the process's output, when it ends first; kills it and throws after `timeout`.
    public func waitUntil(_ what: String, timeout: Duration, _ condition: () throws -> Bool) async throws {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while try !condition() {
            if !process.isRunning {
                throw TimedOut(
                    description:
                        "'\(name)' ended (status \(process.terminationStatus)) before \(what); stdout: \(stdout.suffix(2000)); stderr: \(stderr.suffix(4000))"
                )
            }
            if ContinuousClock.now >= deadline {
                signal(SIGKILL)
                throw TimedOut(
                    description:
                        "timed out after \(timeout) waiting for \(what) from '\(name)'; stdout: \(stdout.suffix(2000)); stderr: \(stderr.suffix(4000))"
                )
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Waits for the process to end, at most `timeout`; kills it and throws after that.
    public func wait(timeout: Duration = .seconds(60)) async throws -> ProcessOutput {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while process.isRunning {
            if ContinuousClock.now >= deadline {
                signal(SIGKILL)
                throw TimedOut(
                    description: "'\(name)' still running after \(timeout); stdout: \(stdout.suffix(2000)); stderr: \(stderr.suffix(2000))")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        return ProcessOutput(status: process.terminationStatus, stdout: stdout, stderr: stderr)
    }
}

/// Runs `workflow-events` with `arguments` to its end.
public func runTool(
    _ arguments: [String], environment: [String: String] = [:], timeout: Duration = .seconds(60)
) async throws -> ProcessOutput {
    try await ChildProcess("workflow-events", arguments, environment: environment).wait(timeout: timeout)
}

/// CLOCK_MONOTONIC in nanoseconds: the same clock in every process of this machine.
public func monotonicNanoseconds() -> UInt64 {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
}
