// The dead-letter topic: messages that are not valid events, and events whose handler failed.

import Foundation
import Logging
import Metrics
import Synchronization
import Tracing

extension WorkflowEventConsumer {

    /// Writes `record` unchanged (value, key, headers) to the dead-letter topic with headers
    /// saying why, where from and when, and waits until it is stored.
    func deadLetter(_ record: ConsumerRecord, kind: String, reason: String) async throws {
        guard let topic = configuration.deadLetterTopic else { return }
        let producer: WorkflowEventProducer
        if let existing = deadLetterProducer {
            producer = existing
        } else {
            producer = try WorkflowEventProducer(
                configuration: .init(
                    bootstrapServers: configuration.bootstrapServers, clientID: configuration.clientID + ".dead-letters",
                    // Any message the consumer could fetch must fit; the broker's limit for
                    // the dead-letter topic still applies.
                    properties: configuration.properties.filter { Self.isConnectionProperty($0.key) }
                        .merging(["message.max.bytes": String(64 << 20)]) { mine, _ in mine }),
                logger: logger)
            deadLetterProducer = producer
        }
        let headers =
            record.headers + [
                KafkaHeader(name: DeadLetterHeader.kind, string: kind),
                KafkaHeader(name: DeadLetterHeader.reason, string: reason),
                KafkaHeader(name: DeadLetterHeader.topic, string: record.topic),
                KafkaHeader(name: DeadLetterHeader.partition, string: String(record.partition)),
                KafkaHeader(name: DeadLetterHeader.offset, string: String(record.offset)),
                KafkaHeader(name: DeadLetterHeader.time, string: formatRFC3339(Date())),
            ]
        do {
            _ = try await producer.sendRecord(value: record.value, key: record.key, headers: headers, to: topic)
        } catch {
            throw KafkaError(
                code: (error as? KafkaError)?.code ?? .state,
                message:
                    "\(record.topic)[\(record.partition)]@\(record.offset) was not stored in dead-letter topic '\(topic)', so it stays unprocessed: \(error)",
                operation: "dead-letter a message", isRetriable: true)
        }
        counters.deadLettered += 1
        metrics.deadLettered.increment()
        logger.info(
            "sent a message to the dead-letter topic",
            metadata: Self.coordinates(record.topic, record.partition, record.offset)
                .merging(["dead_letter.topic": "\(topic)", "dead_letter.kind": "\(kind)"]) { $1 })
    }

    /// Properties a dead-letter producer shares with the consumer: how to reach and
    /// authenticate to the cluster.
    static func isConnectionProperty(_ name: String) -> Bool {
        ["security.", "sasl.", "ssl.", "socket.", "broker.", "client.dns", "api.version"].contains { name.hasPrefix($0) }
    }

    /// The headers a dead-lettered message carries besides its own.
    public enum DeadLetterHeader {
        /// `invalid-event` (not a valid event) or `handler-failed` (the handler kept throwing).
        public static let kind = "dead-letter.kind"
        /// Why, in words: the validation error or the handler's error.
        public static let reason = "dead-letter.reason"
        /// The topic the message was read from.
        public static let topic = "dead-letter.topic"
        /// Its partition.
        public static let partition = "dead-letter.partition"
        /// Its offset.
        public static let offset = "dead-letter.offset"
        /// When it was dead-lettered, RFC 3339 in UTC.
        public static let time = "dead-letter.time"
    }
}
