public import Foundation

// The decoder made for the contract: one pass over the bytes, no intermediate `Any`, no
// Foundation parser, no error thrown on the valid path. Every byte sequence either decodes
// or throws a `WorkflowEventValidationError`; nesting is bounded, so hostile input cannot
// exhaust the stack.

extension WorkflowEvent {
    /// How deep arrays and objects may nest inside an event before it is rejected.
    public static let maximumNestingDepth = 512

    /// Validates and decodes the contract form of an event (Python's `model_validate_json`).
    ///
    /// - Throws: ``WorkflowEventValidationError`` naming the field and the rule broken.
    public init(validatingJSON bytes: [UInt8]) throws(WorkflowEventValidationError) {
        self = try bytes.withUnsafeBufferPointer { buffer throws(WorkflowEventValidationError) in
            try WorkflowEvent.decode(buffer)
        }
    }

    /// Validates and decodes the contract form of an event held in `Data`.
    public init(validatingJSON data: Data) throws(WorkflowEventValidationError) {
        let result: Result<WorkflowEvent, WorkflowEventValidationError> = data.withUnsafeBytes { raw in
            do throws(WorkflowEventValidationError) {
                return .success(try WorkflowEvent.decode(raw.bindMemory(to: UInt8.self)))
            } catch {
                return .failure(error)
            }
        }
        self = try result.get()
    }

    /// Validates and decodes the contract form of an event from UTF-8 text.
    public init(validatingJSON text: String) throws(WorkflowEventValidationError) {
        try self.init(validatingJSON: Array(text.utf8))
    }

    /// Decodes from a borrowed buffer (a Kafka message's value, without copying it).
    static func decode(_ raw: UnsafeRawBufferPointer) throws(WorkflowEventValidationError) -> WorkflowEvent {
        try decode(raw.bindMemory(to: UInt8.self))
    }

    static func decode(_ buffer: UnsafeBufferPointer<UInt8>) throws(WorkflowEventValidationError) -> WorkflowEvent {
        var reader = JSONReader(buffer)
        return try reader.readEvent()
    }
}

extension JSONValue {
    /// Parses any JSON document into a `JSONValue`, with the same rules as the event decoder.
    public init(parsingJSON bytes: [UInt8]) throws(WorkflowEventValidationError) {
        self = try bytes.withUnsafeBufferPointer { buffer throws(WorkflowEventValidationError) in
            var reader = JSONReader(buffer)
            reader.skipWhitespace()
            let value = try reader.readValue(depth: 0, field: nil)
            try reader.expectEnd()
            return value
        }
    }
}
