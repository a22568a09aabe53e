import Foundation
import Synchronization
import TestSupport
import Testing
import WorkflowEventsTesting

@Suite("The embedded mock cluster")
struct MockClusterTests {
    /// librdkafka's mock closes a broker's listening socket when the broker goes down and binds
    /// its port again at once. A child process being started holds a copy of every descriptor
    /// until it runs its program: a listener closed in that moment is still listening there,
    /// the bind fails and the mock aborts the whole process (an assertion in rdkafka_mock.c).
    /// Taking a broker down and starting a child (`spawnChild`) exclude each other.
    @Test("a broker taken down while child processes start binds its port again (1,000 times)")
    func brokerDownWhileSpawning() async throws {
        let cluster = try MockKafkaCluster()
        defer { cluster.shutdown() }
        let stop = Atomic<Bool>(false)
        let spawned = Atomic<Int>(0)
        // Two threads of their own start children as fast as they can.
        let spawners = (0..<2).map { _ in
            Thread {
                while !stop.load(ordering: .relaxed) {
                    if let pid = try? spawnChild(path: "/bin/true", arguments: ["/bin/true"], environment: []) {
                        var status: Int32 = 0
                        waitpid(pid, &status, 0)
                        spawned.add(1, ordering: .relaxed)
                        // A breath between children, so that the brokers' turns come (the
                        // lock they share is not fair).
                        usleep(200)
                    }
                }
            }
        }
        for spawner in spawners { spawner.start() }
        while spawned.load(ordering: .relaxed) == 0 { await Task.yield() }
        for _ in 0..<1_000 {
            try cluster.setBrokerDown(1)
            try cluster.setBrokerUp(1)
        }
        stop.store(true, ordering: .relaxed)
        #expect(spawned.load(ordering: .relaxed) > 0)
    }
}
