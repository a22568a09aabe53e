/// Why bytes are not a valid workflow event: which field, which rule, and where.
///
/// Thrown by ``WorkflowEvent/init(validatingJSON:)-([UInt8])``; the consumer logs it with the
/// message's topic, partition and offset, counts it and moves on.
public struct WorkflowEventValidationError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The kind of rule that was broken. New kinds may be added: match the ones you need.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case invalidJSON = "invalid JSON"
            case invalidUTF8 = "invalid UTF-8"
            case nestingTooDeep = "nesting too deep"
            case notAnObject = "not a JSON object"
            case missingField = "missing field"
            case wrongType = "wrong type"
            case invalidValue = "invalid value"
            case emptyMessage = "empty message"
        }

        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// The bytes are not JSON (a syntax error, or trailing bytes after the value).
        public static let invalidJSON = Code(.invalidJSON)
        /// A string holds bytes that are not UTF-8.
        public static let invalidUTF8 = Code(.invalidUTF8)
        /// Arrays and objects are nested deeper than ``WorkflowEvent/maximumNestingDepth``.
        public static let nestingTooDeep = Code(.nestingTooDeep)
        /// The JSON value is not an object.
        public static let notAnObject = Code(.notAnObject)
        /// A required field is absent.
        public static let missingField = Code(.missingField)
        /// A field has the wrong JSON type.
        public static let wrongType = Code(.wrongType)
        /// A field has the right type but breaks its rule (a bad UUID or timestamp, an empty id).
        public static let invalidValue = Code(.invalidValue)
        /// The message has a value of zero bytes.
        public static let emptyMessage = Code(.emptyMessage)

        /// The code in words.
        public var description: String { base.rawValue }
    }

    /// Which rule was broken.
    public var code: Code
    /// The field's path (`timestamp`, `payload.data`, `metadata.owner`), or nil when the
    /// document as a whole is at fault.
    public var field: String?
    /// The byte offset in the message value where the problem was found.
    public var byteOffset: Int?
    /// The rule that was broken, in words.
    public var reason: String

    /// Creates an error, for tests and custom validators.
    public init(code: Code, field: String?, byteOffset: Int?, reason: String) {
        self.code = code
        self.field = field
        self.byteOffset = byteOffset
        self.reason = reason
    }

    /// One sentence: the field, the reason and the byte offset.
    public var description: String {
        var text = "invalid workflow event: "
        if let field { text += "field '\(field)': " }
        text += reason
        if let byteOffset { text += " (at byte \(byteOffset))" }
        return text
    }

    /// Errors are equal when their codes and fields are.
    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.code == rhs.code && lhs.field == rhs.field
    }
}
