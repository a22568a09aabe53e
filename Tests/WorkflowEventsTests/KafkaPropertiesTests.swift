import Foundation
import Testing
import WorkflowEvents

/// Reading librdkafka properties from files, settings, the environment; without a cluster.
@Suite("KafkaProperties")
struct KafkaPropertiesTests {
    func file(_ text: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("kafka-properties-\(UUID())").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test("a later setting replaces an earlier one; comments and blank lines are skipped; spaces around '=' go")
    func order() throws {
        let config = try file("# a comment\n\n  client.id = from-file  \nlinger.ms=5\n")
        let properties = try KafkaProperties(
            configFile: config, settings: ["client.id=from-setting", "acks=all"], environment: [:])
        #expect(properties.values == ["client.id": "from-setting", "linger.ms": "5", "acks": "all"])
        #expect(properties.origin(of: "linger.ms") == "--config \(config) line 4")
        #expect(properties.origin(of: "client.id") == "--property")
    }

    @Test("the default file comes from $WORKFLOW_EVENTS_CONFIG, unless a file is given")
    func defaultFile() throws {
        let fromEnvironment = try file("client.id=environment\n")
        let given = try file("client.id=given\n")
        let environment = [KafkaProperties.configEnvironmentVariable: fromEnvironment]
        #expect(try KafkaProperties(configFile: nil, settings: [], environment: environment).values["client.id"] == "environment")
        #expect(try KafkaProperties(configFile: given, settings: [], environment: environment).values["client.id"] == "given")
        #expect(try KafkaProperties(configFile: nil, settings: [], environment: [:]).values.isEmpty)
    }

    @Test("@FILE, env:NAME and raw:TEXT values; a value may hold '='")
    func valueForms() throws {
        let secret = try file("s3cret\n")
        let properties = try KafkaProperties(
            configFile: nil,
            settings: [
                "sasl.password=@\(secret)", "ssl.key.password=env:KEY_PASSWORD", "client.id=raw:@literal",
                "sasl.oauthbearer.config=principal=admin",
            ],
            environment: ["KEY_PASSWORD": "from-env"])
        #expect(properties.values["sasl.password"] == "s3cret")
        #expect(properties.values["ssl.key.password"] == "from-env")
        #expect(properties.values["client.id"] == "@literal")
        #expect(properties.values["sasl.oauthbearer.config"] == "principal=admin")
    }

    @Test("errors name the line or option, never a secret's value")
    func errors() throws {
        let broken = try file("acks=all\nlinger.ms\n")
        #expect(throws: WorkflowEventsError.self) { try KafkaProperties(configFile: broken, settings: [], environment: [:]) }
        do {
            _ = try KafkaProperties(configFile: broken, settings: [], environment: [:])
        } catch let error as WorkflowEventsError {
            #expect(error.message == "--config \(broken) line 2: expected key=value, found no '='")
        }
        do {
            _ = try KafkaProperties(configFile: nil, settings: ["=value"], environment: [:])
            Issue.record("an empty name was taken")
        } catch let error as WorkflowEventsError {
            #expect(error.message == "--property: the property's name is empty")
        }
        do {
            _ = try KafkaProperties(configFile: nil, settings: ["ssl.ca.location=/nonexistent/ca.pem"], environment: [:])
            Issue.record("a missing CA file was taken")
        } catch let error as WorkflowEventsError {
            #expect(error.message == "ssl.ca.location names /nonexistent/ca.pem, which does not exist (set by --property)")
        }
        #expect(try KafkaProperties(configFile: nil, settings: ["ssl.ca.location=probe"], environment: [:]).values.count == 1)
    }

    @Test("explain adds where a named property was set and cuts secret values out")
    func explain() throws {
        let properties = try KafkaProperties(
            configFile: nil, settings: ["sasl.password=hunter22", "fetch.max.bytes=lots"], environment: [:])
        struct Failure: Error, CustomStringConvertible { let description: String }
        let text = properties.explain(Failure(description: "property \"fetch.max.bytes\" refused; password hunter22"))
        #expect(text == "property \"fetch.max.bytes\" refused; password [redacted] (fetch.max.bytes set by --property)")
        #expect(properties.redact("hunter22 and hunter22") == "[redacted] and [redacted]")
    }
}
