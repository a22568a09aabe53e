import Testing

@testable import WorkflowEvents

/// The offset bookkeeping of a reader's batch, without a cluster: which events' offsets are
/// stored when, and which go back.
@Suite("Reader cursor")
struct ReaderCursorTests {
    @Test("an event is finished when the next one is asked for; the batch's end finishes the last")
    func advanceFinishes() {
        var cursor = ReaderCursor(count: 3)
        #expect(cursor.advance() == 0)
        #expect(cursor.inHand == 0)
        #expect(cursor.takeToStore(includingInHand: false).isEmpty)
        #expect(cursor.advance() == 1)
        #expect(cursor.inHand == 1)
        #expect(cursor.takeToStore(includingInHand: false) == 0..<1)
        #expect(cursor.advance() == 2)
        #expect(cursor.advance() == nil)
        #expect(cursor.inHand == nil)
        #expect(cursor.takeToStore(includingInHand: false) == 1..<3)
        // Nothing is stored twice.
        #expect(cursor.takeToStore(includingInHand: false).isEmpty)
    }

    @Test("a batch reader holds its whole batch: finished at the next call, given back whole at a release")
    func batchInHand() {
        var cursor = ReaderCursor(count: 10)
        #expect(cursor.advance(upTo: 4) == 0..<4)
        #expect(cursor.inHand == 0)
        #expect(cursor.takeToStore(includingInHand: false).isEmpty)
        #expect(cursor.advance(upTo: 4) == 4..<8)
        #expect(cursor.takeToStore(includingInHand: false) == 0..<4)
        // A revocation may store the finished batch only.
        #expect(cursor.finishedRange == 0..<4)
        let (store, giveBack) = cursor.release()
        #expect(store.isEmpty)
        #expect(giveBack == 4..<10)
        #expect(cursor.advance(upTo: 4) == nil)

        var last = ReaderCursor(count: 5)
        #expect(last.advance(upTo: 4) == 0..<4)
        #expect(last.advance(upTo: 4) == 4..<5)
        #expect(last.takeToStore(includingInHand: true) == 0..<5)
        #expect(last.advance(upTo: 4) == nil)
        #expect(last.takeToStore(includingInHand: false).isEmpty)
    }

    @Test("a commit from the loop body includes the event in hand, and it is not stored again")
    func commitIncludesInHand() {
        var cursor = ReaderCursor(count: 4)
        _ = cursor.advance()
        _ = cursor.advance()
        #expect(cursor.takeToStore(includingInHand: true) == 0..<2)
        _ = cursor.advance()
        #expect(cursor.takeToStore(includingInHand: false).isEmpty)
        #expect(cursor.takeToStore(includingInHand: true) == 2..<3)
    }

    @Test("a release stores the finished events and gives back the one in hand with those not taken")
    func releaseGivesBackInHand() {
        var cursor = ReaderCursor(count: 5)
        _ = cursor.advance()
        _ = cursor.advance()
        _ = cursor.advance()
        let (store, giveBack) = cursor.release()
        #expect(store == 0..<2)
        #expect(giveBack == 2..<5)
        #expect(cursor.advance() == nil)
        #expect(cursor.remaining == 0)
    }

    @Test("a release before anything was taken gives everything back and stores nothing")
    func releaseUntouched() {
        var cursor = ReaderCursor(count: 2)
        let (store, giveBack) = cursor.release()
        #expect(store.isEmpty)
        #expect(giveBack == 0..<2)
    }

    @Test("a cut gives back what was not taken; the event in hand stays and finishes as usual")
    func cutKeepsInHand() {
        var cursor = ReaderCursor(count: 6)
        _ = cursor.advance()
        _ = cursor.advance()
        #expect(cursor.cut() == 2..<6)
        #expect(cursor.remaining == 0)
        #expect(cursor.inHand == 1)
        #expect(cursor.finishedRange == 0..<1)
        #expect(cursor.advance() == nil)
        #expect(cursor.takeToStore(includingInHand: false) == 0..<2)
        #expect(cursor.cut().isEmpty)
    }

    @Test("a stopped loop finishes its event in hand without taking another")
    func finishInHand() {
        var cursor = ReaderCursor(count: 3)
        _ = cursor.advance()
        cursor.finishInHand()
        #expect(cursor.inHand == nil)
        let (store, giveBack) = cursor.release()
        #expect(store == 0..<1)
        #expect(giveBack == 1..<3)
    }

    @Test("random sequences keep the invariants, and every finished event is stored exactly once")
    func randomSequences() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<500 {
            let count = Int.random(in: 0...20, using: &generator)
            var cursor = ReaderCursor(count: count)
            var storedCount = 0
            for _ in 0..<30 {
                switch Int.random(in: 0..<10, using: &generator) {
                case 0..<6: _ = cursor.advance()
                case 6: storedCount += cursor.takeToStore(includingInHand: Bool.random(using: &generator)).count
                case 7: _ = cursor.cut()
                default: storedCount += cursor.takeToStore(includingInHand: false).count
                }
                #expect(cursor.finished <= cursor.taken && cursor.taken <= cursor.end && cursor.end <= cursor.count)
                #expect(cursor.taken - cursor.finished <= 1)
                #expect(cursor.stored <= cursor.taken)
                #expect(storedCount == cursor.stored)
            }
            // The reader works through the rest: everything it took is then stored once.
            while cursor.advance() != nil {}
            storedCount += cursor.takeToStore(includingInHand: false).count
            #expect(storedCount == cursor.taken)
        }
    }
}
