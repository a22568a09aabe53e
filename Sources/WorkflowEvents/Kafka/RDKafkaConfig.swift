internal import CRDKafka
import Logging

/// Builds an `rd_kafka_conf_t` from librdkafka properties. The pointer never leaves this
/// file: callers receive it inside `withConfiguration`, whose body must hand it to
/// `rd_kafka_new` (which takes ownership on success) or let this type destroy it.
enum RDKafkaConfig {
    /// Applies `properties` in order to a new configuration and calls `body` with it.
    /// `body` returns whether it took ownership of the configuration.
    static func withConfiguration<T>(
        _ properties: [(String, String)],
        _ body: (OpaquePointer) throws -> (T, tookOwnership: Bool)
    ) throws -> T {
        guard let conf = rd_kafka_conf_new() else {
            throw WorkflowEventsError(.invalidConfiguration, "librdkafka could not allocate a configuration")
        }
        var owned = true
        defer { if owned { rd_kafka_conf_destroy(conf) } }
        var errorText = [CChar](repeating: 0, count: 512)
        for (name, value) in properties {
            let result = rd_kafka_conf_set(conf, name, value, &errorText, errorText.count)
            if result != RD_KAFKA_CONF_OK {
                let reason = RDKafkaConfig.cText(errorText)
                throw WorkflowEventsError(
                    .invalidConfiguration,
                    "librdkafka rejected property '\(name)' = '\(value)': \(reason)")
            }
        }
        let (value, took) = try body(conf)
        if took { owned = false }
        return value
    }

    /// The text of a NUL-terminated buffer librdkafka wrote an error into.
    static func cText(_ buffer: [CChar]) -> String {
        buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    /// Routes one of librdkafka's log lines (syslog levels) into `logger`. Libraries log at
    /// info or below: librdkafka's errors and warnings arrive as info.
    static func forwardLog(
        _ logger: Logger, level: Int32, facility: UnsafePointer<CChar>?, message: UnsafePointer<CChar>
    ) {
        logger.log(
            level: level <= 5 ? .info : .debug, "\(String(cString: message))",
            metadata: [
                "librdkafka.facility": "\(facility.map { String(cString: $0) } ?? "")",
                "librdkafka.level": "\(level)",
            ])
    }

    /// The librdkafka version this process runs, e.g. `2.0.2`.
    static var libraryVersion: String { String(cString: rd_kafka_version_str()) }
}

extension Duration {
    /// Whole milliseconds, clamped to `Int32` as librdkafka's timeouts are.
    var milliseconds: Int32 {
        let (seconds, attoseconds) = components
        let total = seconds * 1000 + attoseconds / 1_000_000_000_000_000
        return Int32(clamping: max(0, total))
    }
}
