/// What happened to a workflow: `workflow.completed`, `step.failed`, ...
///
/// An extensible string type: the known values of the contract are constants, and a value
/// this version does not know (a newer producer's) decodes unchanged into ``rawValue``.
public struct EventType: RawRepresentable, Hashable, Sendable, Codable,
    ExpressibleByStringLiteral, CustomStringConvertible
{
    /// The value as it appears on the wire.
    public var rawValue: String

    /// Any event type, known or not.
    public init(rawValue: String) { self.rawValue = rawValue }
    /// Any event type, known or not.
    public init(_ rawValue: String) { self.rawValue = rawValue }
    /// An event type written as a string literal.
    public init(stringLiteral value: String) { self.rawValue = value }

    /// The raw value.
    public var description: String { rawValue }

    /// Whether this is one of the values the contract lists.
    public var isKnown: Bool { Self.allKnown.contains(self) }

    /// A run was queued.
    public static let workflowQueued: EventType = "workflow.queued"
    /// A run started.
    public static let workflowStarted: EventType = "workflow.started"
    /// A run ended successfully.
    public static let workflowCompleted: EventType = "workflow.completed"
    /// A run ended in failure.
    public static let workflowFailed: EventType = "workflow.failed"
    /// A run was cancelled.
    public static let workflowCancelled: EventType = "workflow.cancelled"
    /// A failed run is being retried.
    public static let workflowRetrying: EventType = "workflow.retrying"
    /// A step of a run started.
    public static let stepStarted: EventType = "step.started"
    /// A step ended successfully.
    public static let stepCompleted: EventType = "step.completed"
    /// A step failed.
    public static let stepFailed: EventType = "step.failed"
    /// A step was skipped.
    public static let stepSkipped: EventType = "step.skipped"
    /// An alert was raised about a workflow.
    public static let alertRaised: EventType = "alert.raised"
    /// A metric of a workflow was recorded.
    public static let metricRecorded: EventType = "metric.recorded"

    /// Every value the contract lists, in its order.
    public static let allKnown: [EventType] = [
        .workflowQueued, .workflowStarted, .workflowCompleted, .workflowFailed,
        .workflowCancelled, .workflowRetrying, .stepStarted, .stepCompleted,
        .stepFailed, .stepSkipped, .alertRaised, .metricRecorded,
    ]

    /// Decodes a JSON string.
    public init(from decoder: any Decoder) throws {
        rawValue = try decoder.singleValueContainer().decode(String.self)
    }

    /// Encodes the raw value as a JSON string.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
}
