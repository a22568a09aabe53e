// A revocation handler's commits against the hand-over, without a cluster: the committer
// is driven directly, its commit call held at a gate.
import Dispatch
import Foundation
import Synchronization
import TestSupport
import Testing

@testable import WorkflowEvents

@Suite("Rebalance handlers' commits")
struct RebalanceCommitterTests {
    let partition = TopicPartition(topic: "t", partition: 0)

    /// A committer whose commits wait at `gate`, then note that they landed.
    func committer(_ gate: Gate, landed: Tally) -> RebalanceCommitter {
        RebalanceCommitter(
            commit: { _ in
                await gate.wait()
                landed.add()
            },
            finished: { _ in [] })
    }

    /// A committer with one commit on its way, held at the returned gate.
    func commitInFlight() async throws -> (RebalanceCommitter, Gate, Tally, Task<Void, any Error>) {
        let gate = Gate()
        let landed = Tally()
        let committer = committer(gate, landed: landed)
        let partition = self.partition
        let committing = Task { try await committer.commit([(partition, 5)], lost: false) }
        try await waitUntil("the commit is in flight") { gate.isWaiting }
        return (committer, gate, landed, committing)
    }

    @Test("a commit started before the hand-over ends before it: close waits for it, and refuses what starts after")
    func closeWaitsForCommitInFlight() async throws {
        let (committer, gate, landed, committing) = try await commitInFlight()
        // close blocks its thread (librdkafka's, in the consumer): here a dispatch thread.
        let closed = Mutex<(inTime: Bool, landedBefore: Int)?>(nil)
        DispatchQueue.global().async {
            let inTime = committer.close(waitingUpTo: Duration.seconds(60))
            let landedBefore = landed.count
            closed.withLock { $0 = (inTime, landedBefore) }
        }
        try await waitUntil("close waits, or has returned") {
            committer.isWaitingForCommits || closed.withLock { $0 != nil }
        }
        gate.open()
        try await committing.value
        try await waitUntil("close returned") { closed.withLock { $0 != nil } }
        let outcome = try #require(closed.withLock { $0 })
        #expect(outcome.landedBefore == 1, "close returned while the handler's commit was still on its way to the broker")
        #expect(outcome.inTime)
        await #expect(throws: WorkflowEventsError.self) { try await committer.commit([(partition, 6)], lost: false) }
        #expect(landed.count == 1)
    }

    @Test("a commit that does not end within the wait: close gives up, says so, and the later commits are refused")
    func closeGivesUpAfterItsWait() async throws {
        let (committer, gate, landed, committing) = try await commitInFlight()
        let inTime = try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(returning: committer.close(waitingUpTo: Duration.milliseconds(20))) }
        }
        #expect(!inTime, "close said the commit ended, while it waits at the gate")
        await #expect(throws: WorkflowEventsError.self) { try await committer.commit([(partition, 6)], lost: false) }
        gate.open()
        try await committing.value
        // Closing again once nothing is in flight returns at once.
        #expect(committer.close(waitingUpTo: Duration.seconds(60)))
        #expect(landed.count == 1)
    }

    @Test("a lost partition's commit is refused before it starts")
    func lostIsRefused() async throws {
        let gate = Gate()
        gate.open()
        let landed = Tally()
        let committer = committer(gate, landed: landed)
        await #expect(throws: WorkflowEventsError.self) { try await committer.commit([(partition, 5)], lost: true) }
        #expect(landed.count == 0)
    }
}
