internal import CRDKafka
import Foundation
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
                    "librdkafka rejected property '\(name)' = '\(redacted(name, value))': \(redacted(name, value, in: reason))")
            }
        }
        let (value, took) = try body(conf)
        if took { owned = false }
        return value
    }

    /// Whether a property holds a secret: a password, a private key, a client secret, or
    /// configuration that may embed one.
    static func isSecret(_ name: String) -> Bool {
        let key = name.lowercased()
        return key.contains("password") || key.contains("secret") || key == "ssl.key.pem"
            || key == "ssl_key" || key.hasPrefix("ssl.key") || key == "sasl.oauthbearer.config"
            || key.contains("keystore") || key.contains("token")
    }

    /// The value, or `[redacted]` for a secret property.
    static func redacted(_ name: String, _ value: String) -> String {
        isSecret(name) ? "[redacted]" : value
    }

    /// `text` with a secret property's value cut out of it.
    static func redacted(_ name: String, _ value: String, in text: String) -> String {
        guard isSecret(name), !value.isEmpty else { return text }
        return text.replacingOccurrences(of: value, with: "[redacted]")
    }

    /// `[key: value, ...]` sorted by key, secret values redacted.
    static func redactedDescription(_ properties: [String: String]) -> String {
        "[" + properties.keys.sorted().map { "\($0): \(redacted($0, properties[$0]!))" }.joined(separator: ", ") + "]"
    }

    /// The text of a NUL-terminated buffer librdkafka wrote an error into.
    static func cText(_ buffer: [CChar]) -> String {
        buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    /// Routes one of librdkafka's log lines into `logger`, its syslog level mapped to
    /// swift-log's: 0-3 error, 4 warning, 5 notice, 6 info, 7 debug.
    static func forwardLog(
        _ logger: Logger, level: Int32, facility: UnsafePointer<CChar>?, message: UnsafePointer<CChar>
    ) {
        logger.log(
            level: level <= 3 ? .error : level == 4 ? .warning : level == 5 ? .notice : level == 6 ? .info : .debug,
            "\(String(cString: message))",
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
