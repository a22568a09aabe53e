// A second broker implementation for the group tests: the mock cluster of the librdkafka
// that confluent-kafka's wheel carries (2.16), started by scripts/mock-cluster-2.16.py in a
// process of its own: the same tests against a second implementation of the group protocol.
import Foundation
public import WorkflowEventsTesting

/// What the group tests need of a cluster. What may block (a child process's answer) runs
/// off Swift's cooperative pool: with two threads in it, a test blocking one of them stalls
/// the group members of the tests running beside it.
public protocol TestCluster: Sendable {
    var bootstrapServers: String { get }
    func createTopic(_ name: String, partitions: Int) async throws
    /// Delays each answer of `broker` by `delay`.
    func setRoundTripTime(_ delay: Duration, broker: Int32) async throws
    func shutdown()
}

extension MockKafkaCluster: TestCluster {
    public func createTopic(_ name: String, partitions: Int) throws {
        try createTopic(name, partitions: partitions, replicationFactor: nil)
    }
}

/// Both mocks answer a member's SyncGroup with INVALID_REQUEST when the leader's came first
/// (the group is up already; a broker answers it with the member's assignment): the member
/// rejoins, and on a loaded machine can lose that race round after round and never get
/// partitions. The leader asks for metadata before it assigns, so with every answer of the
/// broker 50 ms late the other members' SyncGroups come first. For tests whose members must
/// share partitions.
public func letFollowersSyncFirst(_ cluster: any TestCluster, brokers: Int32 = 1) async throws {
    for broker in 1...brokers { try await cluster.setRoundTripTime(.milliseconds(50), broker: broker) }
}

/// The broker implementations the group tests run against.
public enum BrokerImplementation: String, CaseIterable, Sendable, CustomStringConvertible {
    /// librdkafka 2.0.2's mock cluster, in this process (Debian's librdkafka-dev).
    case mock202
    /// librdkafka 2.16's mock cluster, in a Python process (confluent-kafka's wheel).
    case mock216

    public var description: String { self == .mock202 ? "librdkafka 2.0.2 mock" : "librdkafka 2.16 mock" }

    public func makeCluster() async throws -> any TestCluster {
        switch self {
        case .mock202: return try MockKafkaCluster()
        case .mock216: return try await offThePool { try SecondBrokerCluster() }
        }
    }
}

public struct SecondBrokerError: Error, CustomStringConvertible {
    public var description: String
}

/// librdkafka 2.16's mock cluster in a child process, started with `posix_spawn` (as
/// `ChildProcess` is, and for the same reason), talking over its standard input and output.
public final class SecondBrokerCluster: TestCluster, @unchecked Sendable {
    // @unchecked: the pipes are used under `lock` only.
    private let pid: pid_t
    private let input: FileHandle
    private let output: FileHandle
    private let lock = NSLock()
    private var pending = Data()
    private var ended = false
    public let bootstrapServers: String
    /// The librdkafka version the cluster runs, as it names itself.
    public let version: String

    /// The script, found from this file's place in the package.
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("scripts/mock-cluster-2.16.py")

    public init() throws {
        var toChild: [Int32] = [0, 0]
        var fromChild: [Int32] = [0, 0]
        guard pipe(&toChild) == 0, pipe(&fromChild) == 0 else {
            throw SecondBrokerError(description: "no pipe for the 2.16 mock: \(String(cString: strerror(errno)))")
        }
        // The child reads its standard input from one pipe and writes its output to the other;
        // its standard error is this process's.
        pid = try spawnChild(
            path: "/usr/bin/env", arguments: ["/usr/bin/env", "python3", Self.script.path],
            environment: ProcessInfo.processInfo.environment.map { "\($0.key)=\($0.value)" },
            standardInput: .descriptor(toChild[0]), standardOutput: .descriptor(fromChild[1]), standardError: .inherited)
        close(toChild[0])
        close(fromChild[1])
        input = FileHandle(fileDescriptor: toChild[1], closeOnDealloc: true)
        output = FileHandle(fileDescriptor: fromChild[0], closeOnDealloc: true)
        var version = ""
        var servers = ""
        while servers.isEmpty {
            guard let line = Self.readLine(output, &pending) else {
                kill(pid, SIGKILL)
                var status: Int32 = 0
                _ = waitpid(pid, &status, 0)
                throw SecondBrokerError(
                    description:
                        "\(Self.script.lastPathComponent) ended before naming its servers (is confluent-kafka installed? make deps installs it)")
            }
            if line.hasPrefix("version ") { version = String(line.dropFirst(8)) }
            if line.hasPrefix("bootstrap ") { servers = String(line.dropFirst(10)) }
        }
        self.version = version
        self.bootstrapServers = servers
    }

    private static func readLine(_ handle: FileHandle, _ pending: inout Data) -> String? {
        while true {
            if let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: pending[pending.startIndex..<newline], as: UTF8.self)
                pending = Data(pending[(newline + 1)...])
                return line
            }
            let chunk = handle.availableData
            if chunk.isEmpty { return nil }
            pending.append(chunk)
        }
    }

    public func createTopic(_ name: String, partitions: Int) async throws {
        try await offThePool { try self.createTopicNow(name, partitions: partitions) }
    }

    private func createTopicNow(_ name: String, partitions: Int) throws {
        try command("topic \(name) \(partitions)", "creating topic '\(name)'")
    }

    public func setRoundTripTime(_ delay: Duration, broker: Int32) async throws {
        let milliseconds = delay.components.seconds * 1000 + delay.components.attoseconds / 1_000_000_000_000_000
        try await offThePool { try self.command("rtt \(broker) \(milliseconds)", "setting broker \(broker)'s round trip") }
    }

    /// Sends a command and waits for its `ok`.
    private func command(_ line: String, _ what: String) throws {
        lock.lock()
        defer { lock.unlock() }
        try input.write(contentsOf: Data("\(line)\n".utf8))
        let answer = Self.readLine(output, &pending)
        guard answer == "ok" else {
            throw SecondBrokerError(description: "\(what) on the 2.16 mock: \(answer ?? "no answer")")
        }
    }

    /// Asks the process to end, without waiting for it; it is reaped in the background.
    public func shutdown() {
        lock.lock()
        defer { lock.unlock() }
        guard !ended else { return }
        ended = true
        try? input.write(contentsOf: Data("quit\n".utf8))
        try? input.close()
        let pid = self.pid
        DispatchQueue.global().async {
            var status: Int32 = 0
            _ = waitpid(pid, &status, 0)
        }
    }

    deinit { shutdown() }
}

/// Runs blocking work on a dispatch queue, not on Swift's cooperative pool.
func offThePool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async { continuation.resume(with: Result { try body() }) }
    }
}
