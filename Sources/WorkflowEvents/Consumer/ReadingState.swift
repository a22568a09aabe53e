import Synchronization

/// Who reads from a consumer. One reader at a time: a stream or a callback loop (with the
/// message its loop body is working on), or `process`. `poll` reads only while no one else
/// does.
enum ReadingState {
    case idle
    /// A stream or a `consumeEvents`/`serve` loop, and the batch of events it works
    /// through: an event's offset is stored once the reader has asked for the next one.
    case reader(id: Int, batch: ReaderBatch)
    case processing

    var batch: ReaderBatch? {
        if case .reader(_, let batch) = self { return batch }
        return nil
    }

    var isProcessing: Bool {
        if case .processing = self { return true }
        return false
    }
}

/// Readers whose stream was released by its iterating task, noted from any thread (a
/// stream's deinit) and taken by the consumer at its next call.
final class ReleasedReaders: Sendable {
    private let readers = Mutex<[Int]>([])

    func insert(_ reader: Int) { readers.withLock { $0.append(reader) } }

    func take() -> [Int] {
        readers.withLock { readers in
            defer { readers = [] }
            return readers
        }
    }
}

/// What a consumer reads.
enum Subscription: Equatable {
    /// The topics given to `subscribe`: the group's share of their partitions, or every
    /// partition without a group.
    case topics([String])
    /// The partitions given to `assign`, without the group's assignment.
    case partitions(Set<TopicPartition>)

    /// Whether a reader of `topics` reads what this subscription reads, without a change.
    func serves(_ topics: [String]) -> Bool {
        switch self {
        case .topics(let subscribed): return subscribed == topics
        case .partitions(let assigned): return Set(assigned.map(\.topic)) == Set(topics)
        }
    }
}
