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
        let (assignment, isGroupMember, starts) = context.state.withLock {
            ($0.assignment, $0.isGroupMember, $0.startOffsets)
        }
        let partitions = assignment.subtracting(userPaused).sorted()
        var backlog = Backlog()
        if configuration.groupID != nil, case .topics = subscription, !isGroupMember { backlog.awaitingAssignment = true }
        /// Where reading a partition stands, or starts when nothing was read from it yet.
        enum Next {
            case offset(Int64)
            case beginning
            case end
            /// The committed offset, else the reset policy's start.
            case committedOrReset
        }
        var nexts: [(TopicPartition, Next)] = []
        for partition in partitions {
            if let offset = seekPositions[partition] ?? (try? client.position(partition)) {
                nexts.append((partition, .offset(offset)))
            } else if let start = starts[partition] {
                switch start {
                case 0...: nexts.append((partition, .offset(start)))
                case RDKafkaOffset.end: nexts.append((partition, .end))
                case RDKafkaOffset.beginning: nexts.append((partition, .beginning))
                default: nexts.append((partition, .committedOrReset))
                }
            } else {
                nexts.append((partition, .committedOrReset))
            }
        }
        let unread = nexts.compactMap { partition, next in
            if case .committedOrReset = next { partition } else { nil }
        }
        var committed: [TopicPartition: Int64]? = [:]
        if configuration.groupID != nil && !unread.isEmpty {
            committed = try? await client.committed(unread, timeout: configuration.connectionTimeout)
        }
        for (partition, next) in nexts {
            let (low, high) = client.cachedWatermarks(partition)
            switch next {
            case .offset(let offset): backlog.add(partition, next: offset, end: high)
            case .end: backlog.add(partition, next: high, end: high)
            case .beginning: backlog.add(partition, next: low, end: high)
            case .committedOrReset:
                guard let committed else {
                    // The coordinator did not answer: where reading starts is not known.
                    backlog.add(partition, next: nil, end: high)
                    continue
                }
                if let offset = committed[partition] {
                    backlog.add(partition, next: offset, end: high)
                } else {
                    switch configuration.autoOffsetReset {
                    case .earliest: backlog.add(partition, next: low, end: high)
                    case .latest, .none: backlog.add(partition, next: high, end: high)
                    }
                }
            }
        }
        return backlog
    }
}
