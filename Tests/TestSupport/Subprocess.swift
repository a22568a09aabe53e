public import Foundation
import Synchronization
import WorkflowEventsTesting

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
///
/// Started with `posix_spawn`, not Foundation's `Process`: on Linux, `Process.run()` reads
/// `/proc/self/fd` with a 256-byte copy of each directory entry, which crashed this test
/// process now and then (a bad pointer dereference in `memcpy`; swift-corelibs-foundation
/// pull request 5472). The child inherits no descriptor but its standard three.
public final class ChildProcess: Sendable {
    private let pid: pid_t
    /// The wait status, once the child has been reaped.
    private let reaped = Mutex<Int32?>(nil)
    private let stdoutURL: URL
    private let stderrURL: URL
    public let name: String

    public init(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) throws {
        name = ([executable] + arguments).joined(separator: " ")
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("swe-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        stdoutURL = folder.appendingPathComponent("stdout")
        stderrURL = folder.appendingPathComponent("stderr")
        var env = ProcessInfo.processInfo.environment
        env["WORKFLOW_EVENTS_BOOTSTRAP_SERVERS"] = nil
        for (key, value) in environment { env[key] = value }
        let path = productsDirectory.appendingPathComponent(executable).path
        pid = try spawnChild(
            path: path, arguments: [path] + arguments, environment: env.map { "\($0.key)=\($0.value)" },
            standardInput: .file("/dev/null"), standardOutput: .file(stdoutURL.path), standardError: .file(stderrURL.path))
    }

    public var stdout: String { (try? String(contentsOf: stdoutURL, encoding: .utf8)) ?? "" }
    public var stderr: String { (try? String(contentsOf: stderrURL, encoding: .utf8)) ?? "" }

    public func signal(_ number: Int32) { kill(pid, number) }

    /// Whether the child still runs (reaping it once it has ended).
    public var isRunning: Bool { waitStatus == nil }

    /// The exit status, or the number of the signal that ended it (as `Process` gives them).
    public var terminationStatus: Int32 {
        guard let status = waitStatus else { return -1 }
        return status & 0x7f == 0 ? (status >> 8) & 0xff : status & 0x7f
    }

    private var waitStatus: Int32? {
        reaped.withLock { reaped in
            if reaped == nil {
                var status: Int32 = 0
                if waitpid(pid, &status, WNOHANG) == pid { reaped = status }
            }
            return reaped
        }
    }

    /// Waits until `condition` holds while the process runs, at most `timeout`. Throws, with
    /// the process's output, when it ends first; kills it and throws after `timeout`.
    public func waitUntil(_ what: String, timeout: Duration, _ condition: () throws -> Bool) async throws {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while try !condition() {
            if !isRunning {
                throw TimedOut(
                    description:
                        "'\(name)' ended (status \(terminationStatus)) before \(what); stdout: \(stdout.suffix(2000)); stderr: \(stderr.suffix(4000))"
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
        while isRunning {
            if ContinuousClock.now >= deadline {
                signal(SIGKILL)
                throw TimedOut(
                    description: "'\(name)' still running after \(timeout); stdout: \(stdout.suffix(2000)); stderr: \(stderr.suffix(2000))")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        return ProcessOutput(status: terminationStatus, stdout: stdout, stderr: stderr)
    }

    deinit {
        // A child left running is ended and reaped, not left behind as a zombie.
        if isRunning {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            _ = waitpid(pid, &status, 0)
        }
    }
}

/// Where a spawned child's standard stream goes.
enum ChildStream {
    /// A file, opened for reading (standard input) or created and truncated for writing.
    case file(String)
    /// A descriptor of this process, duplicated into the child.
    case descriptor(Int32)
    /// This process's own.
    case inherited
}

/// Starts `path` with `posix_spawn`; the child inherits no descriptor but its standard three.
public func spawnChild(path: String, arguments: [String], environment: [String]) throws -> pid_t {
    try spawnChild(
        path: path, arguments: arguments, environment: environment, standardInput: .file("/dev/null"),
        standardOutput: .file("/dev/null"), standardError: .file("/dev/null"))
}

/// Starts `path` with `posix_spawn`; the child inherits no descriptor but its standard three.
func spawnChild(
    path: String, arguments: [String], environment: [String], standardInput: ChildStream, standardOutput: ChildStream,
    standardError: ChildStream
) throws -> pid_t {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    for (target, stream) in [(Int32(0), standardInput), (1, standardOutput), (2, standardError)] {
        switch stream {
        case .file(let file):
            let flags = target == 0 ? O_RDONLY : O_WRONLY | O_CREAT | O_TRUNC
            posix_spawn_file_actions_addopen(&actions, target, file, flags, 0o644)
        case .descriptor(let descriptor):
            posix_spawn_file_actions_adddup2(&actions, descriptor, target)
        case .inherited:
            break
        }
    }
    guard let closeFrom = closeFromSymbol, closeFrom(&actions, 3) == 0 else {
        throw TimedOut(description: "could not start '\(path)': posix_spawn_file_actions_addclosefrom_np is missing or failed")
    }
    func cStrings(_ strings: [String]) -> [UnsafeMutablePointer<CChar>?] { strings.map { strdup($0) } + [nil] }
    let argv = cStrings(arguments)
    let envp = cStrings(environment)
    defer {
        for pointer in argv { free(pointer) }
        for pointer in envp { free(pointer) }
    }
    var pid: pid_t = 0
    // Until it runs its program, the child holds a copy of every descriptor of this process,
    // a mock broker's listening socket included: no broker may go down meanwhile.
    let result = MockKafkaCluster.whileNoBrokerGoesDown { posix_spawn(&pid, path, &actions, nil, argv, envp) }
    guard result == 0 else {
        throw TimedOut(description: "could not start '\(path)': \(String(cString: strerror(result)))")
    }
    return pid
}

/// glibc's `posix_spawn_file_actions_addclosefrom_np` (2.34 and later), which Swift's Glibc
/// module does not declare.
private typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>?, Int32) -> Int32
private let closeFromSymbol: CloseFrom? = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np").map {
    unsafeBitCast($0, to: CloseFrom.self)
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
