/// A misuse of a consumer or producer, or a condition it cannot wait out: the client is
/// closed, a group is needed, a partition is not assigned, a setting is invalid.
public struct WorkflowEventsError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The kind of misuse or condition; compare with the static constants.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case clientClosed = "client closed"
            case groupRequired = "group required"
            case partitionNotAssigned = "partition not assigned"
            case invalidConfiguration = "invalid configuration"
            case timedOut = "timed out"
            case invalidEvent = "invalid event"
            case readerBusy = "reader busy"
        }

        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// The consumer or producer was closed; make a new one.
        public static let clientClosed = Code(.clientClosed)
        /// The operation (a commit, a committed-offset look-up) needs a `groupID`.
        public static let groupRequired = Code(.groupRequired)
        /// The partition named is not assigned to this consumer.
        public static let partitionNotAssigned = Code(.partitionNotAssigned)
        /// A setting or librdkafka property was rejected.
        public static let invalidConfiguration = Code(.invalidConfiguration)
        /// A bounded wait ran out.
        public static let timedOut = Code(.timedOut)
        /// An event could not be encoded for sending.
        public static let invalidEvent = Code(.invalidEvent)
        /// Another reader (a stream, a callback loop, `poll` or `process`) is reading from
        /// this consumer: one reader at a time, so that a commit never covers another
        /// reader's unfinished event.
        public static let readerBusy = Code(.readerBusy)

        /// The code in words.
        public var description: String { base.rawValue }
    }

    /// What kind of error this is.
    public var code: Code
    /// What went wrong and how to fix it.
    public var message: String

    /// Creates an error with a code and a sentence saying what to do.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// The message.
    public var description: String { message }

    /// Errors are equal when their codes are.
    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.code == rhs.code }
}
