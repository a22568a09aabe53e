internal import CRDKafka

/// An error reported by Kafka or by librdkafka: its code, name and message, and whether it
/// is fatal (the client cannot go on) or retriable (trying again may succeed).
public struct KafkaError: Error, Sendable, Equatable, CustomStringConvertible {
    /// librdkafka's error code (`rd_kafka_resp_err_t`): negative values are the client's own,
    /// positive ones are Kafka protocol errors.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// The `rd_kafka_resp_err_t` value.
        public let rawValue: Int32
        /// Wraps an `rd_kafka_resp_err_t` value.
        public init(rawValue: Int32) { self.rawValue = rawValue }

        init(_ err: rd_kafka_resp_err_t) { self.rawValue = err.rawValue }
        var cValue: rd_kafka_resp_err_t { rd_kafka_resp_err_t(rawValue: rawValue) }

        /// librdkafka's symbolic name, e.g. `_TRANSPORT` or `UNKNOWN_TOPIC_OR_PART`.
        public var name: String { String(cString: rd_kafka_err2name(cValue)) }
        /// librdkafka's symbolic name.
        public var description: String { name }

        /// A broker connection failed (`_TRANSPORT`).
        public static let transport = Code(RD_KAFKA_RESP_ERR__TRANSPORT)
        /// A local operation timed out (`_TIMED_OUT`).
        public static let timedOut = Code(RD_KAFKA_RESP_ERR__TIMED_OUT)
        /// No broker of the cluster is reachable (`_ALL_BROKERS_DOWN`).
        public static let allBrokersDown = Code(RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
        /// The client hit a fatal error and must be closed (`_FATAL`).
        public static let fatal = Code(RD_KAFKA_RESP_ERR__FATAL)
        /// The broker does not know the topic or partition (`UNKNOWN_TOPIC_OR_PART`).
        public static let unknownTopicOrPartition = Code(RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
        /// The topic is not in the cluster's metadata (`_UNKNOWN_TOPIC`).
        public static let unknownTopic = Code(RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC)
        /// The partition is not in the topic's metadata (`_UNKNOWN_PARTITION`).
        public static let unknownPartition = Code(RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION)
        /// No committed offset and the reset policy is `.none` (`_AUTO_OFFSET_RESET`).
        public static let autoOffsetReset = Code(RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET)
        /// The broker is not the group's coordinator (`NOT_COORDINATOR`).
        public static let notCoordinator = Code(RD_KAFKA_RESP_ERR_NOT_COORDINATOR)
        /// The broker is not the partition's leader (`NOT_LEADER_FOR_PARTITION`).
        public static let notLeaderForPartition = Code(RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION)
        /// The partition has no leader at the moment (`LEADER_NOT_AVAILABLE`).
        public static let leaderNotAvailable = Code(RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE)
        /// The broker did not answer a request in time (`REQUEST_TIMED_OUT`).
        public static let requestTimedOut = Code(RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT)
        /// The client may not access the topic (`TOPIC_AUTHORIZATION_FAILED`).
        public static let topicAuthorizationFailed = Code(RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED)
        /// The client may not use the consumer group (`GROUP_AUTHORIZATION_FAILED`).
        public static let groupAuthorizationFailed = Code(RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED)
        /// The message is larger than the broker accepts (`MSG_SIZE_TOO_LARGE`).
        public static let messageTooLarge = Code(RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE)
        /// A message was not delivered within the delivery timeout (`_MSG_TIMED_OUT`).
        public static let messageTimedOut = Code(RD_KAFKA_RESP_ERR__MSG_TIMED_OUT)
        /// The producer's local queue is full (`_QUEUE_FULL`).
        public static let queueFull = Code(RD_KAFKA_RESP_ERR__QUEUE_FULL)
        /// An argument was rejected by librdkafka (`_INVALID_ARG`).
        public static let invalidArgument = Code(RD_KAFKA_RESP_ERR__INVALID_ARG)
        /// The operation is not possible in the client's current state (`_STATE`).
        public static let state = Code(RD_KAFKA_RESP_ERR__STATE)
        /// The requested offset is outside the partition's range (`OFFSET_OUT_OF_RANGE`).
        public static let outOfRange = Code(RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE)
    }

    /// What kind of error this is.
    public var code: Code
    /// librdkafka's message for this occurrence, or its generic text for the code.
    public var message: String
    /// The client cannot go on: close it and make a new one.
    public var isFatal: Bool
    /// The operation may succeed if tried again.
    public var isRetriable: Bool
    /// What was being done when the error happened (`commit`, `subscribe to [orders]`).
    public var operation: String

    /// Creates an error, for tests and for wrapping with more context.
    public init(code: Code, message: String, operation: String, isFatal: Bool = false, isRetriable: Bool = false) {
        self.code = code
        self.message = message
        self.operation = operation
        self.isFatal = isFatal
        self.isRetriable = isRetriable
    }

    init(_ err: rd_kafka_resp_err_t, operation: String, message: String? = nil, isFatal: Bool = false) {
        self.init(
            code: Code(err), message: message ?? String(cString: rd_kafka_err2str(err)),
            operation: operation, isFatal: isFatal || err == RD_KAFKA_RESP_ERR__FATAL,
            isRetriable: KafkaError.retriableCodes.contains(err.rawValue))
    }

    /// Takes ownership of an `rd_kafka_error_t` and destroys it.
    init(consuming error: OpaquePointer, operation: String) {
        self.init(
            code: Code(rd_kafka_error_code(error)),
            message: String(cString: rd_kafka_error_string(error)),
            operation: operation,
            isFatal: rd_kafka_error_is_fatal(error) != 0,
            isRetriable: rd_kafka_error_is_retriable(error) != 0)
        rd_kafka_error_destroy(error)
    }

    private static let retriableCodes: Set<Int32> = [
        RD_KAFKA_RESP_ERR__TRANSPORT.rawValue, RD_KAFKA_RESP_ERR__TIMED_OUT.rawValue,
        RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN.rawValue, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT.rawValue,
        RD_KAFKA_RESP_ERR_NOT_COORDINATOR.rawValue, RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE.rawValue,
        RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS.rawValue, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION.rawValue,
        RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE.rawValue, RD_KAFKA_RESP_ERR__WAIT_COORD.rawValue,
        RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS.rawValue, RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS.rawValue,
        RD_KAFKA_RESP_ERR__QUEUE_FULL.rawValue,
    ]

    /// The operation, the message, the code's name, and whether it is fatal or retriable.
    public var description: String {
        var text = "Kafka error during \(operation): \(message) [\(code.name)]"
        if isFatal { text += " (fatal: close this client)" } else if isRetriable { text += " (retriable)" }
        return text
    }

    /// Errors are equal when their codes are.
    public static func == (lhs: KafkaError, rhs: KafkaError) -> Bool { lhs.code == rhs.code }
}
