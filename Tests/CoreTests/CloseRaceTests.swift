import Foundation
import Synchronization
import Testing
import WorkflowEventsTesting

@testable import WorkflowEvents

/// The close racing every operation, on the in-memory client: each call returns, or throws
/// a `clientClosed` (or, for a partition the close took away, `partitionNotAssigned`); the
/// close returns; nothing unfinished is committed; every message is destroyed once.
@Suite("The close racing every operation, on the in-memory client", .timeLimit(.minutes(1)))
struct CloseRaceTests {
    @Test("close racing an operation while a stream reads (20 rounds each)", arguments: CloseRaceOperation.allCases)
    func closeRacing(_ operation: CloseRaceOperation) async throws {
        for round in 0..<20 {
            let fixture = Fixture(partitions: 2, events: 60)
            let (consumer, client) = try fixture.consumer()
            try await consumer.subscribe([fixture.topic])
            let delivered = Shared<[Int32: Int64]>([:])
            let reading = Task {
                for try await message in consumer.messages(topics: [fixture.topic]) {
                    delivered.withLock { $0[message.partition] = max($0[message.partition] ?? -1, message.offset) }
                    if round % 3 == 0 { await Task.yield() }
                }
            }
            for _ in 0..<(round % 5) { await Task.yield() }
            let outcome = await withTaskGroup(of: String?.self) { group in
                group.addTask {
                    do {
                        let polled = try await run(operation, on: consumer, fixture)
                        delivered.withLock { delivered in
                            delivered.merge(polled) { max($0, $1) }
                        }
                    } catch let error as WorkflowEventsError
                        where [.clientClosed, .partitionNotAssigned, .readerBusy].contains(error.code)
                    {
                    } catch {
                        return "\(operation) threw \(error)"
                    }
                    return nil
                }
                group.addTask {
                    for _ in 0..<(round % 4) { await Task.yield() }
                    await consumer.close()
                    return nil
                }
                return await group.reduce(into: [String]()) { if let failure = $1 { $0.append(failure) } }
            }
            _ = await reading.result
            #expect(outcome.isEmpty, "round \(round): \(outcome)")
            #expect(client.isClosed, "round \(round): the client is not closed")
            // What the operation itself committed aside (a commit of offset 1), nothing past
            // the last event delivered of a partition.
            for (partition, committed) in fixture.committed where !(operation == .commitOffsets && committed == 1) {
                let last = delivered.withLock { $0[partition.partition] } ?? -1
                #expect(committed <= last + 1, "round \(round): committed \(committed) of \(partition), last delivered \(last)")
            }
            fixture.expectNoMessageLeaked()
        }
    }
}

extension CloseRaceTests {
    @Test("close racing process as it starts: process returns or throws clientClosed, and nothing unfinished is committed (20 rounds)")
    func closeRacingProcess() async throws {
        for round in 0..<20 {
            let fixture = Fixture(partitions: 2, events: 60)
            let (consumer, client) = try fixture.consumer()
            let handled = Shared<[Int32: Int64]>([:])
            let placement = fixture.placement
            // The close's revocation must not wait for a loop that has ended: with an hour to
            // drain, a wait for it would outlast the test.
            var limits = WorkflowEventConsumer.ProcessingLimits(drainTimeout: .seconds(3600))
            limits.revocationReplyGrace = .seconds(3600)
            let processing = Task {
                try await consumer.process(topics: [fixture.topic], maxConcurrency: 4, limits: limits) { event in
                    let (partition, offset) = placement[event.eventID]!
                    handled.withLock { $0[partition.partition] = max($0[partition.partition] ?? -1, offset) }
                }
            }
            for _ in 0..<(round % 6) { await Task.yield() }
            await consumer.close()
            do {
                try await processing.value
            } catch let error as WorkflowEventsError where error.code == .clientClosed {
            } catch {
                Issue.record("round \(round): process threw \(error)")
            }
            #expect(client.isClosed, "round \(round): the client is not closed")
            for (partition, committed) in fixture.committed {
                let last = handled.withLock { $0[partition.partition] } ?? -1
                #expect(committed <= last + 1, "round \(round): committed \(committed) of \(partition), last handled \(last)")
            }
            fixture.expectNoMessageLeaked()
        }
    }
}

/// An operation the close races.
enum CloseRaceOperation: String, CaseIterable, Sendable {
    case seek, position, commit, commitOffsets, pause, resume, lag, committed, subscribe, topics, poll
}

/// Runs `operation`; returns the last offset of each partition it delivered (a poll's records,
/// which count as finished at the close).
@discardableResult
func run(_ operation: CloseRaceOperation, on consumer: WorkflowEventConsumer, _ fixture: Fixture) async throws -> [Int32: Int64] {
    let partition = fixture.partition(0)
    switch operation {
    case .seek: try await consumer.seek(partition, to: 2)
    case .position: _ = try await consumer.position(partition)
    case .commit: try await consumer.commit()
    case .commitOffsets: try await consumer.commit([partition: 1])
    case .pause: try await consumer.pause([partition])
    case .resume: try await consumer.resume([partition])
    case .lag: _ = try await consumer.lag(topics: [fixture.topic])
    case .committed: _ = try await consumer.committed([partition])
    case .subscribe: try await consumer.subscribe([fixture.topic])
    case .topics: _ = try await consumer.topics()
    case .poll:
        let records = try await consumer.poll(timeout: .milliseconds(5))
        return records.reduce(into: [:]) { last, entry in last[entry.key.partition] = entry.value.map(\.offset).max() }
    }
    return [:]
}
