/// Where a reader stands in the batch of events it was handed: the offset bookkeeping of a
/// stream or a `consumeEvents`/`serve` loop, as indices into the batch, without librdkafka.
///
/// The events `0..<taken` were handed out; `0..<finished` are done (the reader asked for the
/// next one after them), so `finished` is `taken - 1` while an event is in hand; the offsets
/// of `0..<stored` were stored. Events `taken..<end` wait; a cut (a seek, a pause, a
/// revocation) gives them back by moving `end` down to `taken`. Invariant:
/// `stored <= taken`, `finished <= taken <= end <= count`. A stream or callback loop holds
/// one event at a time (`taken - finished <= 1`); a batch reader holds its whole batch.
struct ReaderCursor: Equatable {
    private(set) var count = 0
    private(set) var end = 0
    private(set) var taken = 0
    private(set) var finished = 0
    private(set) var stored = 0

    /// A new batch of `count` events; nothing of the last one is referred to any more.
    init(count: Int = 0) {
        self.count = count
        self.end = count
    }

    /// The reader asks for the next event: the one in hand is finished. Returns the index of
    /// the next event, nil when the batch is used up (or cut).
    mutating func advance() -> Int? {
        finished = taken
        guard taken < end else { return nil }
        taken += 1
        return taken - 1
    }

    /// The reader asks for the next events, up to `count`: the ones in hand are finished, and
    /// these are all in hand until the next call. Nil when the batch is used up (or cut).
    mutating func advance(upTo count: Int) -> Range<Int>? {
        finished = taken
        guard taken < end else { return nil }
        let first = taken
        taken = min(end, taken + max(1, count))
        return first..<taken
    }

    /// The event in hand is finished, and no other is taken (a loop that stops after it).
    mutating func finishInHand() {
        finished = taken
    }

    /// The index of the (first) event in hand: handed out and not finished.
    var inHand: Int? { taken > finished ? finished : nil }

    /// The events handed out and not yet given back.
    var remaining: Int { end - taken }

    /// The events whose offsets are to be stored now: the finished ones not stored yet, and
    /// the one in hand too when `includingInHand` (a commit from the loop body, which has
    /// processed it).
    mutating func takeToStore(includingInHand: Bool) -> Range<Int> {
        let limit = includingInHand ? taken : finished
        guard limit > stored else { return stored..<stored }
        defer { stored = limit }
        return stored..<limit
    }

    /// The finished events, stored or not: what a revocation may still store for the
    /// partitions it takes (storing an offset twice changes nothing).
    var finishedRange: Range<Int> { 0..<finished }

    /// Gives back the events not handed out yet: the reader gets none of them.
    mutating func cut() -> Range<Int> {
        defer { end = taken }
        return taken..<end
    }

    /// The reader lets go: its events in hand were not finished and go back with the events
    /// not handed out. Returns the events to store (finished and not stored) and the ones to
    /// give back; the batch is used up afterwards.
    mutating func release() -> (store: Range<Int>, giveBack: Range<Int>) {
        let store = takeToStore(includingInHand: false)
        let giveBack = finished..<end
        taken = finished
        end = finished
        return (store, giveBack)
    }
}
