import Testing

@testable import WorkflowEvents

/// Every transition of the consumer's lifecycle, without a cluster: waiters are numbers.
@Suite("Consumer state machine")
struct ConsumerStateMachineTests {
    typealias Machine = ConsumerStateMachine<Int>

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
}

@Suite("Consumer state machine: subscribing")
struct SubscribingStateTests {
    @Test("one subscription at a time: the others wait and are all resumed when it ends")
    func oneAtATime() {
        var machine = ConsumerStateMachine<Int>()
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

/// Every transition of the fetcher's path, without a cluster: waiters are numbers, a batch
/// read ahead is a name.
@Suite("Fetch path")
struct FetchPathTests {
    typealias Path = FetchPath<Int, String>

    @Test("the first caller owns the fetch path; the others wait and are all resumed when it lets go")
    func oneOwner() {
        var machine = Path()
        guard case .fetch = machine.acquire() else {
            Issue.record("idle path not given")
            return
        }
        #expect(machine.isOwned)
        for waiter in 1...3 {
            guard case .wait = machine.acquire() else {
                Issue.record("owned path given twice")
                return
            }
            machine.wait(waiter)
        }
        let resumed = machine.release()
        #expect(resumed == [1, 2, 3])
        #expect(!machine.isOwned)
        guard case .fetch = machine.acquire() else {
            Issue.record("released path not given")
            return
        }
        let resumed2 = machine.release()
        #expect(resumed2.isEmpty)
    }

    @Test("a batch read ahead is taken by the next owner, once")
    func readAhead() {
        var machine = Path()
        _ = machine.acquire()
        _ = machine.release(readingAhead: "batch 2")
        #expect(machine.pendingReadAhead == "batch 2")
        #expect(!machine.isOwned)
        guard case .takeReadAhead(let pending) = machine.acquire() else {
            Issue.record("the read-ahead was not handed over")
            return
        }
        #expect(pending == "batch 2")
        #expect(machine.pendingReadAhead == nil)
        #expect(machine.isOwned)
        _ = machine.release()
        guard case .fetch = machine.acquire() else {
            Issue.record("a read-ahead handed over twice")
            return
        }
    }

    @Test("the read-ahead is absorbed only while nobody owns the path")
    func absorb() {
        var machine = Path()
        let taken = machine.takeReadAheadIfIdle()
        #expect(taken == nil)
        _ = machine.acquire()
        let taken2 = machine.takeReadAheadIfIdle()
        #expect(taken2 == nil)
        _ = machine.release(readingAhead: "ahead")
        let taken3 = machine.takeReadAheadIfIdle()
        #expect(taken3 == "ahead")
        #expect(machine.isOwned)
        let taken4 = machine.takeReadAheadIfIdle()
        #expect(taken4 == nil)
        machine.wait(7)
        let resumed = machine.release()
        #expect(resumed == [7])
    }

    @Test("the keep-alive's pause: reported once when it begins, lifted once")
    func keepAlivePause() {
        var machine = Path()
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
}
