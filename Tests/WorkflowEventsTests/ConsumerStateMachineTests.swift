import Testing

@testable import WorkflowEvents

/// Every transition of the consumer's lifecycle and fetch path, without a cluster: waiters
/// are numbers, a batch read ahead is a name.
@Suite("Consumer state machine")
struct ConsumerStateMachineTests {
    typealias Machine = ConsumerStateMachine<Int, String>

    @Test("the first caller owns the fetch path; the others wait and are all resumed when it lets go")
    func oneOwner() {
        var machine = Machine()
        guard case .fetch = machine.acquireFetchPath() else {
            Issue.record("idle path not given")
            return
        }
        #expect(machine.isFetchPathOwned)
        for waiter in 1...3 {
            guard case .wait = machine.acquireFetchPath() else {
                Issue.record("owned path given twice")
                return
            }
            machine.wait(waiter)
        }
        let resumed = machine.releaseFetchPath()
        #expect(resumed == [1, 2, 3])
        #expect(!machine.isFetchPathOwned)
        guard case .fetch = machine.acquireFetchPath() else {
            Issue.record("released path not given")
            return
        }
        let resumed2 = machine.releaseFetchPath()
        #expect(resumed2.isEmpty)
    }

    @Test("a batch read ahead is taken by the next owner, once")
    func readAhead() {
        var machine = Machine()
        _ = machine.acquireFetchPath()
        _ = machine.releaseFetchPath(readingAhead: "batch 2")
        #expect(machine.pendingReadAhead == "batch 2")
        #expect(!machine.isFetchPathOwned)
        guard case .takeReadAhead(let pending) = machine.acquireFetchPath() else {
            Issue.record("the read-ahead was not handed over")
            return
        }
        #expect(pending == "batch 2")
        #expect(machine.pendingReadAhead == nil)
        #expect(machine.isFetchPathOwned)
        _ = machine.releaseFetchPath()
        guard case .fetch = machine.acquireFetchPath() else {
            Issue.record("a read-ahead handed over twice")
            return
        }
    }

    @Test("the read-ahead is absorbed only while nobody owns the path")
    func absorb() {
        var machine = Machine()
        let taken = machine.takeReadAheadIfIdle()
        #expect(taken == nil)
        _ = machine.acquireFetchPath()
        let taken2 = machine.takeReadAheadIfIdle()
        #expect(taken2 == nil)
        _ = machine.releaseFetchPath(readingAhead: "ahead")
        let taken3 = machine.takeReadAheadIfIdle()
        #expect(taken3 == "ahead")
        #expect(machine.isFetchPathOwned)
        let taken4 = machine.takeReadAheadIfIdle()
        #expect(taken4 == nil)
        machine.wait(7)
        let resumed = machine.releaseFetchPath()
        #expect(resumed == [7])
    }

    @Test("the keep-alive's pause: reported once when it begins, lifted once")
    func keepAlivePause() {
        var machine = Machine()
        let lifted = machine.liftKeepAlivePause()
        #expect(!lifted)
        let began = machine.pauseForKeepAlive()
        #expect(began)
        let began2 = machine.pauseForKeepAlive()
        #expect(!began2)
        #expect(machine.pausedForKeepAlive)
        let lifted2 = machine.liftKeepAlivePause()
        #expect(lifted2)
        let lifted3 = machine.liftKeepAlivePause()
        #expect(!lifted3)
    }

    @Test("one close at a time: later callers wait for it; after it, close is a no-op")
    func close() {
        var machine = Machine()
        #expect(machine.isOpen)
        let action537 = machine.beginClose()
        guard case .close = action537 else {
            Issue.record("an open consumer did not close")
            return
        }
        #expect(!machine.isOpen && !machine.isClosed)
        let action182 = machine.beginClose()
        guard case .wait = action182 else {
            Issue.record("a second close did not wait")
            return
        }
        machine.waitForClose(1)
        machine.waitForClose(2)
        let resumed = machine.closed()
        #expect(resumed == [1, 2])
        #expect(machine.isClosed)
        let action194 = machine.beginClose()
        guard case .alreadyClosed = action194 else {
            Issue.record("a closed consumer closed again")
            return
        }
    }

    @Test("the lifecycle and the fetch path are independent: a close may own the path while fetches wait")
    func closeOwnsPath() {
        var machine = Machine()
        _ = machine.beginClose()
        guard case .fetch = machine.acquireFetchPath() else {
            Issue.record("the close did not get the path")
            return
        }
        guard case .wait = machine.acquireFetchPath() else {
            Issue.record("a fetch overtook the close")
            return
        }
        machine.wait(5)
        _ = machine.closed()
        let resumed = machine.releaseFetchPath()
        #expect(resumed == [5])
        #expect(machine.isClosed)
    }
}

@Suite("Consumer state machine: subscribing")
struct SubscribingStateTests {
    @Test("one subscription at a time: the others wait and are all resumed when it ends")
    func oneAtATime() {
        var machine = ConsumerStateMachine<Int, String>()
        let first = machine.beginSubscribing()
        #expect(first)
        let second = machine.beginSubscribing()
        #expect(!second)
        machine.waitForSubscription(1)
        machine.waitForSubscription(2)
        let resumed = machine.endSubscribing()
        #expect(resumed == [1, 2])
        let again = machine.beginSubscribing()
        #expect(again)
        let none = machine.endSubscribing()
        #expect(none.isEmpty)
    }
}
