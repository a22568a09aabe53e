/// An event's `payload`: `{"data": {...}}`, with any other keys kept as they came.
///
/// As in the Python model, an absent `data` means empty; a `data` that is not an object is
/// a validation error.
public struct EventPayload: Sendable, Hashable {
    /// The event's data; may be empty.
    public var data: [String: JSONValue]
    /// Keys of `payload` other than `data`, kept so that re-encoding loses nothing.
    public var additionalFields: [String: JSONValue]

    /// A payload with the given data and, rarely, other keys.
    public init(data: [String: JSONValue] = [:], additionalFields: [String: JSONValue] = [:]) {
        self.data = data
        self.additionalFields = additionalFields
    }
}

extension EventPayload: Codable {
    private struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    /// Decodes `{"data": {...}, ...}`; an absent `data` is empty.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Key.self)
        var data: [String: JSONValue]?
        var others: [String: JSONValue] = [:]
        for key in container.allKeys {
            if key.stringValue == "data" {
                data = try container.decode([String: JSONValue].self, forKey: key)
            } else {
                others[key.stringValue] = try container.decode(JSONValue.self, forKey: key)
            }
        }
        self.init(data: data ?? [:], additionalFields: others)
    }

    /// Encodes `data` and the other keys.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        try container.encode(data, forKey: Key(stringValue: "data"))
        for (key, value) in additionalFields where key != "data" {
            try container.encode(value, forKey: Key(stringValue: key))
        }
    }
}
