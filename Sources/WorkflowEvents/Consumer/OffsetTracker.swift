import DequeModule

/// What the readers of one consumer took and finished, per partition, and which offset is to
/// be stored for the next commit: the bookkeeping behind every stored offset, without
/// librdkafka.
///
/// Offsets are in next-offset form (Kafka's convention for commits: the offset of the next
/// record to read). A partition's committable offset is its first taken offset not
/// finished, or else the one after the last offset taken or finished. Readers that finish
/// in order (streams, callback loops, `poll`) report in bulk with ``finish(through:of:)``;
/// `process`, whose handlers finish in any order, reports each offset with
/// ``take(_:of:)`` and ``finish(_:of:)``.
///
/// The consumer's client owns the one instance, behind a lock, and stores what
/// ``takeStores()`` returns: it is the only writer of offsets.
struct OffsetTracker: Sendable {
    struct Partition: Equatable, Sendable {
        /// Offsets taken and not finished, in the order taken (increasing).
        var unfinished = Deque<Int64>()
        /// Finished offsets that an unfinished one precedes.
        var finishedEarly: Set<Int64> = []
        /// One past the last offset taken or finished; -1 before any.
        var next: Int64 = -1
        /// The next-offset last handed out to store; -1 before any.
        var stored: Int64 = -1

        /// The offset to commit, nil before anything was taken or finished.
        var committable: Int64? {
            if let first = unfinished.first { return first }
            return next >= 0 ? next : nil
        }
    }

    private(set) var partitions: [TopicPartition: Partition] = [:]

    /// A reader took the record at `offset` and will report when it is finished.
    mutating func take(_ offset: Int64, of partition: TopicPartition) {
        partitions[partition, default: Partition()].take(offset)
    }

    /// The record at `offset`, taken earlier, is finished.
    mutating func finish(_ offset: Int64, of partition: TopicPartition) {
        partitions[partition]?.finish(offset)
    }

    /// Every record of `partition` up to `offset` is finished (a reader that finishes in
    /// order). The partition continues after `offset`, also when that is behind what was
    /// recorded before (its position moved back).
    mutating func finish(through offset: Int64, of partition: TopicPartition) {
        partitions[partition, default: Partition()].finish(through: offset)
    }

    /// Every record taken is finished (`poll`: a batch is processed once the next is asked for).
    mutating func finishAllTaken() {
        for partition in partitions.keys {
            partitions[partition]!.finishAllTaken()
        }
    }

    /// The committable offset of `partition`, nil when nothing of it was taken or finished.
    func committable(of partition: TopicPartition) -> Int64? {
        partitions[partition]?.committable
    }

    /// The offsets to store now: each partition whose committable offset moved since it was
    /// last handed out. They count as stored from here on.
    mutating func takeStores() -> [(TopicPartition, Int64)] {
        var entries: [(TopicPartition, Int64)] = []
        for (partition, state) in partitions {
            guard let committable = state.committable, committable != state.stored else { continue }
            partitions[partition]!.stored = committable
            entries.append((partition, committable))
        }
        return entries
    }

    /// The partitions go to another owner: their committable offsets (to commit before they
    /// go), and nothing of them is tracked any more.
    mutating func revoke(_ revoked: some Sequence<TopicPartition>) -> [(TopicPartition, Int64)] {
        var entries: [(TopicPartition, Int64)] = []
        for partition in revoked {
            if let committable = partitions.removeValue(forKey: partition)?.committable {
                entries.append((partition, committable))
            }
        }
        return entries
    }

    /// Nothing of these partitions is tracked any more (lost, or sought elsewhere).
    mutating func forget(_ forgotten: some Sequence<TopicPartition>) {
        for partition in forgotten { partitions[partition] = nil }
    }

    /// Nothing is tracked any more (a reader ended).
    mutating func forgetAll() {
        partitions = [:]
    }

    /// The application commits `next` for `partition` itself: it is to be stored, and
    /// reading continues from there.
    mutating func override(_ partition: TopicPartition, next: Int64) {
        partitions[partition] = Partition(next: next)
    }
}

extension OffsetTracker.Partition {
    mutating func take(_ offset: Int64) {
        if let last = unfinished.last, offset <= last {
            // The position moved back (a reset): what was taken before no longer counts.
            unfinished.removeAll()
            finishedEarly.removeAll()
        }
        unfinished.append(offset)
        next = offset + 1
    }

    mutating func finish(_ offset: Int64) {
        guard let first = unfinished.first else { return }
        if offset == first {
            unfinished.removeFirst()
            while let first = unfinished.first, finishedEarly.remove(first) != nil { unfinished.removeFirst() }
        } else if offset > first {
            finishedEarly.insert(offset)
        }
    }

    mutating func finish(through offset: Int64) {
        while let first = unfinished.first, first <= offset { unfinished.removeFirst() }
        if unfinished.isEmpty {
            finishedEarly.removeAll()
        } else {
            finishedEarly = finishedEarly.filter { $0 > offset }
        }
        if unfinished.isEmpty || offset + 1 > next { next = offset + 1 }
    }

    mutating func finishAllTaken() {
        unfinished.removeAll()
        finishedEarly.removeAll()
    }
}
