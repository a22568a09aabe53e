/// The system that emitted an event: `github_actions`, `airflow`, ...
///
/// An extensible string type: the known values of the contract are constants, and a value
/// this version does not know decodes unchanged into ``rawValue``.
public struct EventSource: RawRepresentable, Hashable, Sendable, Codable,
    ExpressibleByStringLiteral, CustomStringConvertible
{
    /// The value as it appears on the wire.
    public var rawValue: String

    /// Any source, known or not.
    public init(rawValue: String) { self.rawValue = rawValue }
    /// Any source, known or not.
    public init(_ rawValue: String) { self.rawValue = rawValue }
    /// A source written as a string literal.
    public init(stringLiteral value: String) { self.rawValue = value }

    /// The raw value.
    public var description: String { rawValue }

    /// Whether this is one of the values the contract lists.
    public var isKnown: Bool { Self.allKnown.contains(self) }

    /// GitHub Actions.
    public static let githubActions: EventSource = "github_actions"
    /// GitLab CI.
    public static let gitlabCI: EventSource = "gitlab_ci"
    /// Jenkins.
    public static let jenkins: EventSource = "jenkins"
    /// Apache Airflow.
    public static let airflow: EventSource = "airflow"
    /// Argo Workflows.
    public static let argoWorkflows: EventSource = "argo_workflows"
    /// Temporal.
    public static let temporal: EventSource = "temporal"
    /// An in-house orchestrator.
    public static let `internal`: EventSource = "internal"

    /// Every value the contract lists, in its order.
    public static let allKnown: [EventSource] = [
        .githubActions, .gitlabCI, .jenkins, .airflow, .argoWorkflows, .temporal, .internal,
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
