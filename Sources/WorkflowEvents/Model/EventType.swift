/// What happened to a workflow: `workflow.completed`, `step.failed`, ...
///
/// An extensible string type: the known values of the contract are constants, and a value
/// this version does not know (a newer producer's) decodes unchanged into ``rawValue``.
public struct EventType: RawRepresentable, Hashable, Sendable, Codable,
    ExpressibleByStringLiteral, CustomStringConvertible
{
    public var rawValue: String

    public init(rawValue: String) { self.rawValue = rawValue }
    public init(_ rawValue: String) { self.rawValue = rawValue }
    public init(stringLiteral value: String) { self.rawValue = value }

    public var description: String { rawValue }

    /// Whether this is one of the values the contract lists.
    public var isKnown: Bool { Self.allKnown.contains(self) }

    public static let workflowQueued: EventType = "workflow.queued"
    public static let workflowStarted: EventType = "workflow.started"
    public static let workflowCompleted: EventType = "workflow.completed"
    public static let workflowFailed: EventType = "workflow.failed"
    public static let workflowCancelled: EventType = "workflow.cancelled"
    public static let workflowRetrying: EventType = "workflow.retrying"
    public static let stepStarted: EventType = "step.started"
    public static let stepCompleted: EventType = "step.completed"
    public static let stepFailed: EventType = "step.failed"
    public static let stepSkipped: EventType = "step.skipped"
    public static let alertRaised: EventType = "alert.raised"
    public static let metricRecorded: EventType = "metric.recorded"

    /// Every value the contract lists, in its order.
    public static let allKnown: [EventType] = [
        .workflowQueued, .workflowStarted, .workflowCompleted, .workflowFailed,
        .workflowCancelled, .workflowRetrying, .stepStarted, .stepCompleted,
        .stepFailed, .stepSkipped, .alertRaised, .metricRecorded,
    ]

    public init(from decoder: any Decoder) throws {
        rawValue = try decoder.singleValueContainer().decode(String.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
}
