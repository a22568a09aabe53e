import Foundation
import WorkflowEvents

/// One readable line for an event: time, type, source, workflow, run, a short payload.
func textLine(for event: WorkflowEvent) -> String {
    let time = event.timestamp.formatted(
        Date.ISO8601FormatStyle(includingFractionalSeconds: true, timeZone: TimeZone(identifier: "UTC")!))
    let fields = event.payload.data.keys.sorted().map { "\($0)=\(compact(event.payload.data[$0]!))" }
    var payload = fields.joined(separator: " ")
    let limit = 80
    if payload.count > limit { payload = String(payload.prefix(limit - 1)) + "…" }
    return [
        time,
        padded(event.eventType.rawValue, 18),
        padded(event.source.rawValue, 14),
        event.workflowID,
        event.workflowRunID ?? "-",
        payload,
    ].joined(separator: "  ")
}

private func padded(_ text: String, _ width: Int) -> String {
    text.count >= width ? text : text + String(repeating: " ", count: width - text.count)
}

/// A payload value in a few characters: strings bare, containers in compact JSON.
func compact(_ value: JSONValue) -> String {
    switch value {
    case .string(let text): return text.contains(" ") ? "\"\(text)\"" : text
    case .int(let number): return String(number)
    case .double(let number): return String(number)
    case .bool(let flag): return String(flag)
    case .null: return "null"
    case .array(let elements): return "[" + elements.map(compact).joined(separator: ",") + "]"
    case .object(let members):
        return "{" + members.keys.sorted().map { "\($0):\(compact(members[$0]!))" }.joined(separator: ",") + "}"
    }
}
