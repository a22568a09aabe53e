// One triage and one failure report for every way of reading: streams, callback loops and
// process classify a fetched message, and log what they skip or what failed, alike.

import Logging

/// What a fetched message is to a reader.
enum MessageKind {
    case event(WorkflowEvent)
    /// A null value: skipped, its offset moves on.
    case tombstone
    /// A value that is not a valid event: skipped or dead-lettered, its offset moves on.
    case invalid(WorkflowEventValidationError)
    /// An error librdkafka hands over as a message: one the caller must act on, or nil for
    /// a transient one (logged; librdkafka retries).
    case error(KafkaError?)
}

extension WorkflowEventConsumer {
    /// Consumer errors the caller must act on; the others are transient.
    static let errorsToThrow: Set<KafkaError.Code> = [
        .fatal, .autoOffsetReset, .topicAuthorizationFailed, .groupAuthorizationFailed,
    ]

    /// Classifies `message`, validating its value unless that was done ahead.
    /// The message keeps no copy of its event: the event is moved out of it.
    nonisolated func classify(_ message: inout FetchedMessage) -> MessageKind {
        if message.isError { return .error(errorToThrow(message)) }
        if message.isTombstone { return .tombstone }
        let decoded =
            message.decoded.take()
            ?? message.withValue { bytes in
                Result { () throws(WorkflowEventValidationError) in try WorkflowEvent.decode(bytes) }
            }
        switch decoded {
        case .success(let event): return .event(event)
        case .failure(let error): return .invalid(error)
        }
    }

    /// The error a message carries when the caller must act on it; other errors are logged.
    nonisolated func errorToThrow(_ message: FetchedMessage) -> KafkaError? {
        guard let error = message.error(operation: "consume \(message.topic)[\(message.partition)]") else { return nil }
        if error.isFatal || Self.errorsToThrow.contains(error.code) { return error }
        logger.info("Kafka reported a consumer error; librdkafka retries", metadata: ["error": "\(error)"])
        return nil
    }

    nonisolated func logTombstone(_ message: FetchedMessage) {
        logger.debug("skipped a tombstone (null value)", metadata: Self.coordinates(message.topic, message.partition, message.offset))
    }

    nonisolated func logInvalidEvent(_ message: FetchedMessage, _ error: WorkflowEventValidationError) {
        logger.info(
            configuration.deadLetterTopic == nil ? "skipped an invalid event" : "an invalid event goes to the dead-letter topic",
            metadata: Self.coordinates(message.topic, message.partition, message.offset).merging(["reason": "\(error)"]) { $1 })
    }

    /// A handler that failed for good (its retries used up).
    nonisolated func logHandlerFailure(_ error: any Error, _ message: WorkflowEventMessage) {
        logger.info(
            configuration.deadLetterTopic != nil
                ? "event handler failed; sending the event to the dead-letter topic"
                : "event handler failed; continuing with the next event",
            metadata: Self.coordinates(message.topic, message.partition, message.offset, event: message.event)
                .merging(["error": "\(error)"]) { $1 })
    }

    /// Log metadata naming where a message came from, and the event when there is one.
    static func coordinates(
        _ topic: String, _ partition: Int32, _ offset: Int64, event: WorkflowEvent? = nil
    ) -> Logger.Metadata {
        var metadata: Logger.Metadata = ["kafka.topic": "\(topic)", "kafka.partition": "\(partition)", "kafka.offset": "\(offset)"]
        if let event { metadata["event.id"] = "\(event.eventID)" }
        return metadata
    }
}
