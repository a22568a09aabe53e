/// The system that emitted an event: `github_actions`, `airflow`, ...
///
/// An extensible string type: the known values of the contract are constants, and a value
/// this version does not know decodes unchanged into ``rawValue``.
public struct EventSource: RawRepresentable, Hashable, Sendable, Codable,
    ExpressibleByStringLiteral, CustomStringConvertible
{
    public var rawValue: String

    public init(rawValue: String) { self.rawValue = rawValue }
    public init(_ rawValue: String) { self.rawValue = rawValue }
    public init(stringLiteral value: String) { self.rawValue = value }

    public var description: String { rawValue }

    /// Whether this is one of the values the contract lists.
    public var isKnown: Bool { Self.allKnown.contains(self) }

    public static let githubActions: EventSource = "github_actions"
    public static let gitlabCI: EventSource = "gitlab_ci"
    public static let jenkins: EventSource = "jenkins"
    public static let airflow: EventSource = "airflow"
    public static let argoWorkflows: EventSource = "argo_workflows"
    public static let temporal: EventSource = "temporal"
    public static let `internal`: EventSource = "internal"

    /// Every value the contract lists, in its order.
    public static let allKnown: [EventSource] = [
        .githubActions, .gitlabCI, .jenkins, .airflow, .argoWorkflows, .temporal, .internal,
    ]

    public init(from decoder: any Decoder) throws {
        rawValue = try decoder.singleValueContainer().decode(String.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
}
