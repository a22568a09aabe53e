import Foundation
import InMemoryLogging
import Logging
import TestSupport
import Testing
import WorkflowEvents
import WorkflowEventsTesting

/// SASL and TLS settings reach librdkafka; their secrets reach nothing else.
@Suite("Reliability: secrets")
struct SecretTests {
    static let password = "pa55-W0rd-never-printed"
    static let keyPassword = "k3y-pa55-never-printed"

    @Test("a run with a SASL password set: librdkafka uses SASL, and no log line, error or description shows the secret")
    func saslPasswordStaysSecret() async throws {
        let cluster = try MockKafkaCluster()
        defer { cluster.shutdown() }
        try cluster.createTopic("secure", partitions: 1)
        var handler = InMemoryLogHandler()
        handler.logLevel = .trace
        let logger = Logger(label: "secrets", factory: { _ in handler })
        let configuration = WorkflowEventConsumer.Configuration(
            bootstrapServers: cluster.bootstrapServers, groupID: "secure", connectionTimeout: .seconds(2),
            properties: [
                "security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": "PLAIN", "sasl.username": "svc-workflows",
                "sasl.password": Self.password, "ssl.key.password": Self.keyPassword, "debug": "security,broker,conf",
            ])
        var texts = [
            configuration.description, String(reflecting: configuration), "\(configuration)",
        ]
        var dumped = ""
        dump(configuration, to: &dumped)
        texts.append(dumped)

        let consumer = try WorkflowEventConsumer(configuration: configuration, logger: logger)
        do {
            try await consumer.subscribe(["secure"])
            let stream = consumer.events(topics: ["secure"], idleTimeout: .seconds(2))
            for try await _ in stream {}
        } catch {
            texts.append("\(error)")
            texts.append(String(reflecting: error))
        }
        await consumer.close()

        // A producer with the same secrets, and a rejected secret value.
        let producerConfiguration = WorkflowEventProducer.Configuration(
            bootstrapServers: cluster.bootstrapServers,
            properties: ["security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": "PLAIN", "sasl.password": Self.password])
        texts.append(producerConfiguration.description)
        texts.append(String(reflecting: producerConfiguration))
        do {
            _ = try WorkflowEventConsumer(
                configuration: .init(
                    bootstrapServers: cluster.bootstrapServers,
                    properties: ["ssl.key.password": Self.keyPassword, "ssl.key.pem": "-----BEGIN PRIVATE KEY----- \(Self.password)"]),
                logger: logger)
        } catch {
            texts.append("\(error)")
        }

        let entries = handler.entries
        let logText = entries.map { entry in "\(entry.message) \(entry.metadata)" }
        // librdkafka received the SASL settings: its security log lines show the mechanism.
        #expect(logText.contains { $0.contains("SASL") || $0.contains("sasl") }, "no SASL activity in \(entries.count) log lines")
        #expect(configuration.description.contains("sasl.password: [redacted]"))
        #expect(configuration.description.contains("sasl.username: svc-workflows"))
        for text in texts + logText {
            #expect(!text.contains(Self.password), "a secret leaked: \(text.prefix(300))")
            #expect(!text.contains(Self.keyPassword), "a secret leaked: \(text.prefix(300))")
        }
        figure(
            "secrets",
            ["log lines checked": "\(logText.count)", "descriptions and errors checked": "\(texts.count)", "secrets found": "0"])
    }
}
