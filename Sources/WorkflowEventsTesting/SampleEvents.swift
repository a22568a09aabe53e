public import Foundation
public import WorkflowEvents

/// Realistic workflow events for demos, tests and benchmarks: runs of several workflows
/// from several sources, each going queued, started, through its steps, to an end.
public enum SampleEvents {
    /// A deterministic generator of the same events for the same seed.
    public struct Generator: Sendable {
        private var state: UInt64
        private var runs: [Run] = []
        private var nextRun = 1
        private let workflows: [(id: String, source: EventSource)]
        private let start: Date

        private struct Run: Sendable {
            var workflow: String
            var source: EventSource
            var runID: String
            var stage = 0
            var step = 0
            var steps: Int
            var attempt = 1
        }

        /// A generator whose events depend only on `seed`, the number of workflows, and the start time.
        public init(seed: UInt64 = 42, workflows: Int = 8, start: Date = Date(timeIntervalSince1970: 1_795_000_000)) {
            state = seed &+ 0x9E37_79B9_7F4A_7C15
            let names = [
                "build-and-test", "deploy-production", "nightly-etl", "release-train", "docs-preview",
                "security-scan", "data-backfill", "canary-rollout", "integration-suite", "model-training",
            ]
            var list: [(String, EventSource)] = []
            for index in 0..<max(1, workflows) {
                let name = names[index % names.count] + (index >= names.count ? "-\(index / names.count)" : "")
                list.append((name, EventSource.allKnown[index % EventSource.allKnown.count]))
            }
            self.workflows = list
            self.start = start
        }

        private mutating func random() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }

        private mutating func random(_ upperBound: Int) -> Int { Int(random() % UInt64(upperBound)) }

        private mutating func uuid() -> UUID {
            let a = random()
            let b = random()
            var bytes = (
                UInt8(truncatingIfNeeded: a), UInt8(truncatingIfNeeded: a >> 8), UInt8(truncatingIfNeeded: a >> 16),
                UInt8(truncatingIfNeeded: a >> 24), UInt8(truncatingIfNeeded: a >> 32), UInt8(truncatingIfNeeded: a >> 40),
                UInt8(truncatingIfNeeded: a >> 48), UInt8(truncatingIfNeeded: a >> 56), UInt8(truncatingIfNeeded: b),
                UInt8(truncatingIfNeeded: b >> 8), UInt8(truncatingIfNeeded: b >> 16), UInt8(truncatingIfNeeded: b >> 24),
                UInt8(truncatingIfNeeded: b >> 32), UInt8(truncatingIfNeeded: b >> 40), UInt8(truncatingIfNeeded: b >> 48),
                UInt8(truncatingIfNeeded: b >> 56)
            )
            bytes.6 = (bytes.6 & 0x0F) | 0x40
            bytes.8 = (bytes.8 & 0x3F) | 0x80
            return UUID(uuid: bytes)
        }

        /// One millisecond after another from `start`, computed as the decoder computes a
        /// parsed timestamp, so that events survive a trip through JSON unchanged.
        private func timestamp(_ sequence: Int) -> Date {
            let seconds = start.timeIntervalSince1970.rounded(.down) + Double(sequence / 1000)
            return Date(timeIntervalSince1970: seconds + Double((sequence % 1000) * 1_000_000) / 1e9)
        }

        /// The next event of some run.
        public mutating func next(sequence: Int) -> WorkflowEvent {
            if runs.count < 4 || random(8) == 0 {
                let workflow = workflows[random(workflows.count)]
                runs.append(Run(workflow: workflow.id, source: workflow.source, runID: "run-\(8800 + nextRun)", steps: 2 + random(4)))
                nextRun += 1
            }
            let index = random(runs.count)
            var run = runs[index]
            let type: EventType
            var data: [String: JSONValue] = ["attempt": .int(Int64(run.attempt))]
            let stepNames = ["checkout", "compile", "unit-tests", "package", "publish", "notify"]
            switch run.stage {
            case 0:
                type = .workflowQueued
                data["queue"] = "default"
                run.stage = 1
            case 1:
                type = .workflowStarted
                data["runner"] = .string("runner-\(random(16))")
                run.stage = 2
            case 2:
                type = .stepStarted
                data["step"] = .string(stepNames[run.step % stepNames.count])
                run.stage = 3
            case 3:
                let roll = random(20)
                if roll == 0 {
                    type = .stepFailed
                    data["error"] = "exit code 1"
                    run.stage = run.attempt < 2 ? 5 : 6
                } else if roll == 1 {
                    type = .stepSkipped
                    run.step += 1
                    run.stage = run.step >= run.steps ? 4 : 2
                } else {
                    type = .stepCompleted
                    data["duration_ms"] = .int(Int64(200 + random(20_000)))
                    run.step += 1
                    run.stage = run.step >= run.steps ? 4 : 2
                }
                data["step"] = .string(stepNames[max(0, run.step - 1) % stepNames.count])
            case 5:
                type = .workflowRetrying
                run.attempt += 1
                run.step = 0
                run.stage = 2
            case 6:
                type = .workflowFailed
                data["status"] = "failure"
                run.stage = 7
            default:
                let roll = random(30)
                type = roll == 0 ? .alertRaised : (roll == 1 ? .metricRecorded : (roll == 2 ? .workflowCancelled : .workflowCompleted))
                data["status"] = "success"
                data["duration_ms"] = .int(Int64(1000 + random(100_000)))
                data["tags"] = ["ci", "main"]
                run.stage = 7
            }
            let event = WorkflowEvent(
                eventID: uuid(), eventType: type, source: run.source, workflowID: run.workflow,
                workflowRunID: run.runID, timestamp: timestamp(sequence),
                payload: EventPayload(data: data), metadata: ["correlation_id": "c-\(sequence)", "sequence": "\(sequence)"])
            if run.stage == 7 {
                runs.remove(at: index)
            } else {
                runs[index] = run
            }
            return event
        }
    }

    /// `count` events; each carries its position in `metadata["sequence"]`.
    public static func make(count: Int, seed: UInt64 = 42, workflows: Int = 8) -> [WorkflowEvent] {
        var generator = Generator(seed: seed, workflows: workflows)
        return (0..<count).map { generator.next(sequence: $0) }
    }
}
