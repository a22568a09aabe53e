import Synchronization

/// The validated events a reader (a stream's iterator, or a `consumeEvents`/`serve` loop)
/// works through without a call to the consumer actor per event.
///
/// Shared by three parties, each under the one lock:
/// - the reader takes the next event (`next`), which finishes the one in hand;
/// - the consumer actor fills it, stores the offsets of finished events when the reader
///   comes back for more, at a commit, a release or the close, and cuts it at a seek or a
///   pause (the events not handed out go back to the consumer's buffer);
/// - librdkafka's rebalance callback, before partitions are revoked, stores their finished
///   events' offsets and cuts the rest (`revoke`), so that their next owner starts right
///   after the last finished event.
///
/// A message belongs to the batch from `fill` until one of the calls that take it out hands
/// it to the caller; so no message is destroyed while another party still reads it.
final class ReaderBatch: Sendable {
    private struct Content {
        var cursor = ReaderCursor()
        var messages: [FetchedMessage] = []
        /// Nil once moved out to a reader that keeps no event in hand here (a stream of
        /// events, or of batches).
        var events: [WorkflowEvent?] = []
        /// Partitions whose events of this batch are not stored any more: revoked, or
        /// sought elsewhere while one of their events was in hand.
        var excluded: Set<TopicPartition> = []
        /// Cut by a revocation: for the consumer to take back (and drop what was revoked).
        var returned: [FetchedMessage] = []
        /// Events handed out since the reader began: the keep-alive watches it for progress.
        var handedOut = 0
        /// The part of `handedOut` already added to the consumer's statistics.
        var counted = 0

        /// The offset of the last event of each partition in `range`, less the excluded
        /// partitions: what a reader finished there.
        func toStore(_ range: Range<Int>) -> [(TopicPartition, Int64)] {
            lastOffsets(of: messages[range], excluding: excluded)
        }
    }

    private let content = Mutex(Content())

    /// How a batch reader's batches are made: up to `count` events, waiting up to `wait`
    /// after the first one for the rest. Nil for a reader of one event at a time.
    struct Gathering: Sendable {
        let count: Int
        let wait: Duration
    }

    let gathering: Gathering?

    init(gathering: Gathering? = nil) {
        self.gathering = gathering
    }

    /// What the consumer takes out of the batch: the last finished offset of each partition
    /// to record first, then the messages to destroy, and messages to put back in front of
    /// its buffer. The batch's messages are moved out, not copied.
    struct Taken {
        var store: [(TopicPartition, Int64)] = []
        var messages: [FetchedMessage] = []
        var destroyed: Range<Int> = 0..<0
        var giveBack: [FetchedMessage] = []
        /// Events handed out and not yet counted in the statistics.
        var delivered = 0
    }

    // MARK: The reader

    /// The next event; the one in hand is finished. Nil when the batch is used up or cut.
    func nextEvent() -> WorkflowEvent? {
        content.withLock { content in
            guard let index = content.cursor.advance() else { return nil }
            content.handedOut += 1
            // Moved out, not copied: the stream's reader never asks for it again.
            return content.events[index].take()
        }
    }

    /// The next event with its coordinates (topic, key, headers and timestamp only when
    /// `withCoordinates`); the one in hand is finished.
    func nextMessage(withCoordinates: Bool) -> WorkflowEventMessage? {
        content.withLock { content in
            guard let index = content.cursor.advance() else { return nil }
            content.handedOut += 1
            return Self.message(content.events[index]!, content.messages[index], withCoordinates: withCoordinates)
        }
    }

    /// The next events, up to `count`, with their coordinates; the ones in hand are finished,
    /// and these are in hand until the next call. Nil when the batch is used up or cut.
    func nextMessages(upTo count: Int) -> [WorkflowEventMessage]? {
        content.withLock { content in
            guard let range = content.cursor.advance(upTo: count) else { return nil }
            content.handedOut += range.count
            return range.map { Self.message(content.events[$0].take()!, content.messages[$0], withCoordinates: true) }
        }
    }

    private static func message(_ event: WorkflowEvent, _ message: FetchedMessage, withCoordinates: Bool) -> WorkflowEventMessage {
        if withCoordinates {
            return WorkflowEventMessage(
                event: event, topic: message.topic, partition: message.partition, offset: message.offset,
                key: message.key, headers: message.headers, timestamp: message.timestamp)
        }
        return WorkflowEventMessage(
            event: event, topic: "", partition: message.partition, offset: message.offset, key: nil, headers: [],
            timestamp: nil)
    }

    /// The event in hand is finished and the reader takes no other (a stopped `serve`).
    func finishInHand() {
        content.withLock { $0.cursor.finishInHand() }
    }

    // MARK: The consumer

    /// Hands the reader a new batch. The last one must have been taken out.
    func fill(_ messages: [FetchedMessage], _ events: [WorkflowEvent?]) {
        precondition(messages.count == events.count)
        content.withLock { content in
            precondition(content.cursor.remaining == 0 && content.cursor.inHand == nil && content.returned.isEmpty)
            content.cursor = ReaderCursor(count: messages.count)
            content.messages = messages
            content.events = events
            content.excluded = []
        }
    }

    /// The reader came back for more: everything handed out is finished.
    func takeFinished() -> Taken {
        content.withLock { content in
            let store = content.cursor.takeToStore(includingInHand: false)
            var taken = Taken(store: content.toStore(store), destroyed: 0..<content.cursor.end, giveBack: content.returned)
            // A message in hand at the time it could not be finished does not exist here: the
            // reader asked for the next one, so the cursor finished it.
            Self.reset(&content, into: &taken)
            return taken
        }
    }

    /// The reader let go (a `break`, a throw, a released stream): its event in hand is not
    /// finished and goes back, with the events it did not take.
    func release() -> Taken {
        content.withLock { content in
            let (store, giveBack) = content.cursor.release()
            var taken = Taken(
                store: content.toStore(store), destroyed: 0..<giveBack.lowerBound,
                giveBack: Array(content.messages[giveBack]) + content.returned)
            Self.reset(&content, into: &taken)
            // The event in hand was handed out and comes again: it counts once more then.
            return taken
        }
    }

    /// The consumer closes: finished events are stored, the rest is not (an event in hand is
    /// read again by the partition's next owner).
    func close() -> Taken {
        content.withLock { content in
            let store = content.cursor.takeToStore(includingInHand: false)
            // The messages cut from the batch belong to whoever took them.
            content.messages = Array(content.messages[0..<content.cursor.end]) + content.returned
            var taken = Taken(store: content.toStore(store), destroyed: content.messages.indices)
            Self.reset(&content, into: &taken)
            return taken
        }
    }

    private static func reset(_ content: inout Content, into taken: inout Taken) {
        taken.delivered = content.handedOut - content.counted
        content.counted = content.handedOut
        content.cursor = ReaderCursor()
        swap(&taken.messages, &content.messages)
        content.events = []
        content.excluded = []
        content.returned = []
    }

    /// A commit from the loop body: the finished events and the one in hand, which the body
    /// has processed. The messages stay in the batch: store them before it moves on.
    func withOffsetsForCommit(_ body: ([(TopicPartition, Int64)]) -> Void) {
        content.withLock { content in
            body(content.toStore(content.cursor.takeToStore(includingInHand: true)))
        }
    }

    /// Stores the finished events' offsets now (before a seek moves a partition).
    func withFinished(_ body: ([(TopicPartition, Int64)]) -> Void) {
        content.withLock { content in
            body(content.toStore(content.cursor.takeToStore(includingInHand: false)))
        }
    }

    /// Gives back the events not handed out (a pause or a seek changes what comes next); with
    /// `sought`, that partition's event in hand will not be stored either.
    func cut(sought: TopicPartition? = nil) -> [FetchedMessage] {
        content.withLock { content in
            if let sought { content.excluded.insert(sought) }
            return Array(content.messages[content.cursor.cut()]) + Self.takeReturned(&content)
        }
    }

    private static func takeReturned(_ content: inout Content) -> [FetchedMessage] {
        defer { content.returned = [] }
        return content.returned
    }

    /// librdkafka revokes `partitions` (on its polling thread): `store` is called, inside the
    /// lock, with the finished events of those partitions, whose offsets it stores before
    /// the revocation commits. Their event in hand and later events are never stored; the
    /// events not handed out are cut, for the consumer to drop or put back.
    func revoke(_ partitions: Set<TopicPartition>, store: ([(TopicPartition, Int64)]) -> Void) {
        content.withLock { content in
            let finished = content.toStore(content.cursor.finishedRange).filter { partitions.contains($0.0) }
            store(finished)
            content.excluded.formUnion(partitions)
            content.returned += content.messages[content.cursor.cut()]
        }
    }

    // MARK: Looking

    /// The event in hand with its coordinates, for a failure's log and dead letter.
    func inHand() -> (message: WorkflowEventMessage, record: ConsumerRecord)? {
        content.withLock { content in
            guard let index = content.cursor.inHand else { return nil }
            let message = content.messages[index]
            guard let event = content.events[index] else { return nil }
            return (Self.message(event, message, withCoordinates: true), message.record)
        }
    }

    /// The offset of the first event of `partition` not handed out yet.
    func firstWaitingOffset(of partition: TopicPartition) -> Int64? {
        content.withLock { content in
            let cursor = content.cursor
            return content.messages[cursor.taken..<cursor.end].first {
                $0.partition == partition.partition && $0.topic == partition.topic
            }?.offset
        }
    }

    /// Events handed out in all (for the keep-alive), events handed out and not yet counted,
    /// and events waiting.
    var progress: (handedOut: Int, uncounted: Int, waiting: Int) {
        content.withLock { ($0.handedOut, $0.handedOut - $0.counted, $0.cursor.remaining + $0.returned.count) }
    }
}
