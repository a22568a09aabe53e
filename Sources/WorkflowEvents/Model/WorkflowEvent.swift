public import Foundation

/// One workflow event, exactly as the contract defines it (`docs/contract.md` in this
/// package's repository: fields, rules, valid and invalid examples, the Python model).
///
/// Decode one from the bytes of a Kafka message with ``init(validatingJSON:)-([UInt8])``
/// (the fast path, used by the consumer), or through `Codable`. ``jsonBytes()`` writes the
/// contract form that Python producers and consumers read.
public struct WorkflowEvent: Sendable, Hashable {
    /// A UUID, matched case-insensitively on the wire.
    public var eventID: UUID
    /// What happened (`event_type`).
    public var eventType: EventType
    /// The system that reported it (`source`).
    public var source: EventSource
    /// Never empty; also the Kafka message key.
    public var workflowID: String
    /// The run of the workflow, when the event is about one (`workflow_run_id`).
    public var workflowRunID: String?
    /// When it happened (`timestamp`, RFC 3339 on the wire).
    public var timestamp: Date
    /// Type-specific details (`payload`).
    public var payload: EventPayload
    /// String key-value pairs for correlation and routing (`metadata`).
    public var metadata: [String: String]
    /// 1 when absent on the wire.
    public var schemaVersion: Int

    /// Creates an event; a new random `eventID` and the current time by default.
    public init(
        eventID: UUID = UUID(),
        eventType: EventType,
        source: EventSource,
        workflowID: String,
        workflowRunID: String? = nil,
        timestamp: Date = Date(),
        payload: EventPayload = EventPayload(),
        metadata: [String: String] = [:],
        schemaVersion: Int = 1
    ) {
        self.eventID = eventID
        self.eventType = eventType
        self.source = source
        self.workflowID = workflowID
        self.workflowRunID = workflowRunID
        self.timestamp = timestamp
        self.payload = payload
        self.metadata = metadata
        self.schemaVersion = schemaVersion
    }
}

extension WorkflowEvent: Codable {
    enum CodingKeys: String, CodingKey {
        case eventID = "event_id"
        case eventType = "event_type"
        case source
        case workflowID = "workflow_id"
        case workflowRunID = "workflow_run_id"
        case timestamp
        case payload
        case metadata
        case schemaVersion = "schema_version"
    }

    /// Decodes the contract form through `Codable` (slower than ``init(validatingJSON:)-([UInt8])``).
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let idText = try container.decode(String.self, forKey: .eventID)
        guard let id = parseUUIDString(idText) else {
            throw DecodingError.dataCorruptedError(
                forKey: .eventID, in: container,
                debugDescription: "event_id: expected a UUID in canonical text form, got \"\(idText)\"")
        }
        eventID = id
        eventType = try container.decode(EventType.self, forKey: .eventType)
        source = try container.decode(EventSource.self, forKey: .source)
        workflowID = try container.decode(String.self, forKey: .workflowID)
        guard !workflowID.isEmpty else {
            throw DecodingError.dataCorruptedError(
                forKey: .workflowID, in: container, debugDescription: "workflow_id: must not be empty")
        }
        workflowRunID = try container.decodeIfPresent(String.self, forKey: .workflowRunID)
        let timeText = try container.decode(String.self, forKey: .timestamp)
        guard let time = parseRFC3339(Array(timeText.utf8)) else {
            throw DecodingError.dataCorruptedError(
                forKey: .timestamp, in: container,
                debugDescription: "timestamp: expected an RFC 3339 date-time with a zone, got \"\(timeText)\"")
        }
        timestamp = time
        payload = try container.decode(EventPayload.self, forKey: .payload)
        metadata = try container.decodeIfPresent([String: String].self, forKey: .metadata) ?? [:]
        schemaVersion = try container.decodeIfPresent(Int.self, forKey: .schemaVersion) ?? 1
    }

    /// Encodes the contract form through `Codable`.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(eventID.uuidString.lowercased(), forKey: .eventID)
        try container.encode(eventType, forKey: .eventType)
        try container.encode(source, forKey: .source)
        try container.encode(workflowID, forKey: .workflowID)
        try container.encode(workflowRunID, forKey: .workflowRunID)
        try container.encode(formatRFC3339(timestamp), forKey: .timestamp)
        try container.encode(payload, forKey: .payload)
        try container.encode(metadata, forKey: .metadata)
        try container.encode(schemaVersion, forKey: .schemaVersion)
    }
}
