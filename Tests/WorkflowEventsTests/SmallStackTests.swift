import Foundation
import Synchronization
import Testing
import WorkflowEvents
import WorkflowEventsTesting

@Suite("Decoding on a small stack")
struct SmallStackTests {
    /// Decodes `document` on a thread with a 512 KB stack (Dispatch's default on macOS) and
    /// says how it ended.
    static func decodeOnSmallStack(_ document: [UInt8]) async -> String {
        await withCheckedContinuation { continuation in
            let thread = Thread {
                do {
                    let event = try WorkflowEvent(validatingJSON: document)
                    continuation.resume(returning: "decoded \(event.eventID)")
                } catch let error as WorkflowEventValidationError {
                    continuation.resume(returning: "\(error.code)")
                } catch {
                    continuation.resume(returning: "unexpected \(error)")
                }
            }
            thread.stackSize = 512 * 1024
            thread.start()
        }
    }

    @Test(
        "nesting at the limit, and just past it, in the payload, the metadata and an unknown field",
        arguments: [
            ("payload", "{\"data\":{\"a\":%@}}", "decoded"),
            ("unknown", "%@", "decoded"),
        ])
    func nestingAtTheLimit(place: String, template: String, expected: String) async throws {
        let depth = WorkflowEvent.maximumNestingDepth
        for (levels, wanted) in [(depth - 4, expected), (depth + 1, "nesting too deep")] {
            for (open, close) in [("[", "]"), ("{\"k\":", "}")] {
                let nested = String(repeating: open, count: levels) + "1" + String(repeating: close, count: levels)
                let value = template.replacingOccurrences(of: "%@", with: nested)
                let field = place == "payload" ? "payload" : "extra"
                let document = HostileInputs.document([field: value])
                let outcome = await Self.decodeOnSmallStack(document)
                #expect(outcome.hasPrefix(wanted), "\(place), \(levels) levels of \(open): \(outcome)")
            }
        }
    }

    @Test("deep values read without recursion equal what was written: arrays, objects, scalars and escapes, 500 levels")
    func deepValuesRoundTrip() throws {
        var state: UInt64 = 42
        func next() -> UInt64 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return state >> 33
        }
        for round in 0..<20 {
            let depth = 30 + Int(next() % 470)
            var value = JSONValue.string("leaf \"\(round)\"\n\u{1F600}")
            for level in 0..<depth {
                let sibling: JSONValue = [JSONValue.null, .bool(true), .int(Int64(level)), .double(0.5), .string("s\(level)")][Int(next() % 5)]
                if next() % 2 == 0 {
                    value = .array(next() % 2 == 0 ? [value, sibling] : [sibling, value, .array([]), .object([:])])
                } else {
                    value = .object(["child": value, "k\(level)": sibling, "empty": .object([:])])
                }
            }
            var event = SampleEvents.make(count: 1)[0]
            event.payload.data = ["deep": value]
            let decoded = try WorkflowEvent(validatingJSON: try event.jsonBytes())
            #expect(decoded.payload.data["deep"] == value, "round \(round), \(depth) levels")
        }
    }
}
