// How far behind a member is: the idle timeouts count only once it has caught up.

import Synchronization

/// What a member has left to read in the partitions it owns, as far as it knows.
struct Backlog: Sendable, Equatable, CustomStringConvertible {
    /// Events not yet read, by partition (only partitions with some).
    var behind: [TopicPartition: Int64] = [:]
    /// Partitions whose end (or start) is not known yet: no fetch response has come for them.
    var unknown: Set<TopicPartition> = []
    /// A group member that lost its assignment (a session that expired in an outage) and
    /// has not been given one again: what it owns is not known.
    var awaitingAssignment = false

    var isCaughtUp: Bool { behind.isEmpty && unknown.isEmpty && !awaitingAssignment }
    var events: Int64 { behind.values.reduce(0, +) }

    var description: String {
        if isCaughtUp { return "caught up" }
        var parts: [String] = []
        if awaitingAssignment { parts.append("waiting for the group to assign partitions again") }
        if !behind.isEmpty { parts.append("\(events) events behind on \(behind.count) partitions") }
        if !unknown.isEmpty { parts.append("the end of \(unknown.count) partitions not known yet") }
        return parts.joined(separator: ", ")
    }

    /// The backlog of one partition: `end` is the high watermark, `next` the next offset
    /// this member reads; nil for either while unknown.
    mutating func add(_ partition: TopicPartition, next: Int64?, end: Int64?) {
        guard let next, let end else {
            unknown.insert(partition)
            return
        }
        if end > next { behind[partition] = end - next }
    }
}

extension WorkflowEventConsumer {
    /// What the partitions this member reads (owned, not paused by the application) hold
    /// beyond what it has read, from librdkafka's last fetch responses. Where nothing was read
    /// from a partition yet, reading starts where a seek or the assignment said, else at the
    /// committed offset (asked of the coordinator), else where the reset policy says.
    func backlog() async -> Backlog {
        let (assignment, isGroupMember, starts) = client.context.state.withLock {
            ($0.assignment, $0.isGroupMember, $0.startOffsets)
        }
        let partitions = assignment.subtracting(userPaused).sorted()
        var backlog = Backlog()
        if configuration.groupID != nil, case .topics = subscription, !isGroupMember { backlog.awaitingAssignment = true }
        var unread: [TopicPartition] = []
        var next: [TopicPartition: Int64] = [:]
        var startsAtEnd: Set<TopicPartition> = []
        var startsAtBeginning: Set<TopicPartition> = []
        for partition in partitions {
            if let offset = seekPositions[partition] ?? (try? client.position(partition)) {
                next[partition] = offset
            } else if let start = starts[partition], start >= 0 {
                next[partition] = start
            } else if starts[partition] == RDKafkaOffset.end {
                startsAtEnd.insert(partition)
            } else if starts[partition] == RDKafkaOffset.beginning {
                startsAtBeginning.insert(partition)
            } else {
                unread.append(partition)
            }
        }
        var committed: [TopicPartition: Int64] = [:]
        var committedKnown = true
        if configuration.groupID != nil && !unread.isEmpty {
            do {
                committed = try await client.committed(unread, timeout: configuration.connectionTimeout)
            } catch {
                committedKnown = false
            }
        }
        for partition in partitions {
            let (low, high) = client.cachedWatermarks(partition)
            if let offset = next[partition] {
                backlog.add(partition, next: offset, end: high)
            } else if startsAtEnd.contains(partition) {
                backlog.add(partition, next: high, end: high)
            } else if startsAtBeginning.contains(partition) {
                backlog.add(partition, next: low, end: high)
            } else if !committedKnown {
                backlog.add(partition, next: nil, end: high)
            } else if let offset = committed[partition] {
                backlog.add(partition, next: offset, end: high)
            } else {
                // Nothing committed: the reset policy says where reading starts.
                switch configuration.autoOffsetReset {
                case .earliest: backlog.add(partition, next: low, end: high)
                case .latest, .none: backlog.add(partition, next: high, end: high)
                }
            }
        }
        return backlog
    }
}
