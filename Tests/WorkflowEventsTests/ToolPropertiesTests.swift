import Foundation
import TestSupport
import Testing
import WorkflowEvents
import WorkflowEventsTesting

/// librdkafka properties given to the tool: `-X/--property`, `--config`, the file
/// `$WORKFLOW_EVENTS_CONFIG` names, secrets read from files and the environment.
@Suite("workflow-events tool: librdkafka properties")
struct ToolPropertiesTests {
    /// A file in a fresh directory of its own, holding `text`.
    func file(_ name: String, _ text: String) throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tool-properties-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let url = directory.appendingPathComponent(name)
        try text.write(to: url, atomically: true, encoding: .utf8)
        return url.path
    }

    /// The `client.id` librdkafka was made with, from its configuration dump (`debug=conf`).
    func clientID(in stderr: String) -> String? {
        for line in stderr.split(separator: "\n") {
            guard let range = line.range(of: "client.id = ") else { continue }
            return String(line[range.upperBound...]).trimmingCharacters(in: .whitespaces)
        }
        return nil
    }

    @Test("--property wins over --config, which replaces the file $WORKFLOW_EVENTS_CONFIG names; each reaches librdkafka")
    func precedence() async throws {
        let fixture = try await makeFixture(partitions: 1, events: 3)
        defer { fixture.cluster.shutdown() }
        // The environment's file also holds a value librdkafka refuses: a run that reads it
        // while --config is given fails.
        let fromEnvironment = try file("env.properties", "client.id=from-environment\n")
        let refusedInEnvironment = try file("env-bad.properties", "# refused\nclient.id=from-environment\nfetch.max.bytes=lots\n")
        let fromConfig = try file("config.properties", "# the tool's file\n\nclient.id = from-config\nfetch.max.bytes=lots\n")
        let base = [
            "consume", "--bootstrap-servers", fixture.cluster.bootstrapServers, "--topic", fixture.topic, "--max-events", "1",
            "--log-level", "debug", "-X", "debug=conf",
        ]
        let environmentOnly = try await runTool(base, environment: ["WORKFLOW_EVENTS_CONFIG": fromEnvironment])
        #expect(environmentOnly.status == 0, "stderr: \(environmentOnly.stderr.suffix(2000))")
        #expect(clientID(in: environmentOnly.stderr) == "from-environment")

        // --config's file refuses fetch.max.bytes; --property sets it again, and client.id.
        let all = try await runTool(
            base + ["--config", fromConfig, "-X", "fetch.max.bytes=1048576", "--property", "client.id=from-property"],
            environment: ["WORKFLOW_EVENTS_CONFIG": refusedInEnvironment])
        #expect(all.status == 0, "stderr: \(all.stderr.suffix(2000))")
        #expect(clientID(in: all.stderr) == "from-property")

        let configWins = try await runTool(
            base + ["--config", fromConfig, "-X", "fetch.max.bytes=1048576"], environment: ["WORKFLOW_EVENTS_CONFIG": refusedInEnvironment])
        #expect(configWins.status == 0, "stderr: \(configWins.stderr.suffix(2000))")
        #expect(clientID(in: configWins.stderr) == "from-config")

        // Without --property, the file's refused value stands: named with its line.
        let refused = try await runTool(base + ["--config", fromConfig])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("fetch.max.bytes"), "stderr: \(refused.stderr)")
        #expect(refused.stderr.contains("set by --config \(fromConfig) line 4"), "stderr: \(refused.stderr)")
        let refusedFromEnvironment = try await runTool(base, environment: ["WORKFLOW_EVENTS_CONFIG": refusedInEnvironment])
        #expect(refusedFromEnvironment.status == 1)
        #expect(
            refusedFromEnvironment.stderr.contains("set by $WORKFLOW_EVENTS_CONFIG file \(refusedInEnvironment) line 3"),
            "stderr: \(refusedFromEnvironment.stderr)")
    }

    @Test("produce and lag take the same options: their properties reach librdkafka, bootstrap.servers included")
    func produceAndLag() async throws {
        let fixture = try await makeFixture(partitions: 1, events: 0)
        defer { fixture.cluster.shutdown() }
        let servers = fixture.cluster.bootstrapServers
        let produce = try await runTool([
            "produce", "--bootstrap-servers", servers, "--topic", fixture.topic, "--sample", "2", "-X", "client.id=producing",
            "-X", "debug=conf", "--log-level", "debug",
        ])
        #expect(produce.status == 0, "stderr: \(produce.stderr.suffix(2000))")
        #expect(clientID(in: produce.stderr) == "producing")
        let lag = try await runTool([
            // The servers from the properties, as a properties file would give them.
            "lag", "-X", "bootstrap.servers=\(servers)", "--group", "nobody", "-X", "client.id=lagging", "-X", "debug=conf", "--log-level", "debug",
        ])
        #expect(lag.status == 0, "stderr: \(lag.stderr.suffix(2000))")
        #expect(clientID(in: lag.stderr) == "lagging")
        for command in [["produce", "--topic", "t", "--sample", "1"], ["lag", "--group", "g"]] {
            let refused = try await runTool(command + ["--bootstrap-servers", servers, "-X", "no.such.property=1"])
            #expect(refused.status == 1)
            #expect(
                refused.stderr.contains("No such configuration property: \"no.such.property\"") && refused.stderr.contains("set by --property"),
                "\(command[0]) stderr: \(refused.stderr)")
        }
    }

    @Test("a bad setting is a clear error before anything connects: an unknown property, a missing CA file, a line without '=', an unset variable")
    func badSettings() async throws {
        // The servers never answer: each error comes before any connection.
        let base = ["consume", "--bootstrap-servers", "127.0.0.1:1", "--connect-timeout", "30", "--topic", "t"]
        let unknown = try await runTool(base + ["-X", "no.such.property=1"])
        #expect(unknown.status == 1)
        #expect(
            unknown.stderr.contains("No such configuration property: \"no.such.property\" (no.such.property set by --property)"), "\(unknown.stderr)")
        #expect(unknown.stderr.split(separator: "\n").count == 1)

        let config = try file("tls.properties", "security.protocol=SSL\nssl.ca.location=/nonexistent/ca.pem\n")
        let missingCA = try await runTool(base + ["--config", config])
        #expect(missingCA.status == 64)
        #expect(
            missingCA.stderr.contains("ssl.ca.location names /nonexistent/ca.pem, which does not exist (set by --config \(config) line 2)"),
            "\(missingCA.stderr)")

        let broken = try file("broken.properties", "security.protocol=SSL\nssl.ca.location\n")
        let noEquals = try await runTool(base + ["--config", broken])
        #expect(noEquals.status == 64)
        #expect(noEquals.stderr.contains("--config \(broken) line 2: expected key=value"), "\(noEquals.stderr)")

        let unset = try await runTool(base + ["-X", "sasl.password=env:WORKFLOW_EVENTS_TEST_UNSET_VARIABLE"])
        #expect(unset.status == 64)
        #expect(unset.stderr.contains("the environment variable WORKFLOW_EVENTS_TEST_UNSET_VARIABLE is not set"), "\(unset.stderr)")

        let noFile = try await runTool(base + ["-X", "sasl.password=@/nonexistent/secret"])
        #expect(noFile.status == 64)
        #expect(noFile.stderr.contains("cannot read the value of sasl.password from /nonexistent/secret (no such file)"), "\(noFile.stderr)")

        let noConfig = try await runTool(base + ["--config", "/nonexistent/client.properties"])
        #expect(noConfig.status == 64)
        #expect(noConfig.stderr.contains("--config /nonexistent/client.properties: cannot read the file (no such file)"), "\(noConfig.stderr)")
    }

    @Test("a password given on the command line, in a file or in the environment appears nowhere in the output, even with every debug log")
    func secretsStayHidden() async throws {
        let cluster = try MockKafkaCluster()
        defer { cluster.shutdown() }
        let password = "pw-\(UUID().uuidString)"
        let secretFile = try file("password", password + "\n")
        let ways: [(String, [String: String])] = [
            ("sasl.password=\(password)", [:]),
            ("sasl.password=@\(secretFile)", [:]),
            ("sasl.password=env:WORKFLOW_EVENTS_TEST_PASSWORD", ["WORKFLOW_EVENTS_TEST_PASSWORD": password]),
        ]
        // An unreachable broker, and the embedded cluster, which does not speak SASL: both runs fail.
        for servers in ["127.0.0.1:1", cluster.bootstrapServers] {
            for (property, environment) in ways {
                let run = try await runTool(
                    [
                        "consume", "--bootstrap-servers", servers, "--connect-timeout", "2", "--topic", "t", "--log-level", "trace",
                        "-X", "security.protocol=SASL_PLAINTEXT", "-X", "sasl.mechanism=PLAIN", "-X", "sasl.username=alice",
                        "-X", property, "-X", "debug=all",
                    ], environment: environment)
                #expect(run.status == 1, "\(servers), \(property): status \(run.status)")
                #expect(run.stderr.contains("sasl.password"), "librdkafka's configuration dump is missing: \(run.stderr.suffix(500))")
                #expect(!run.stderr.contains(password) && !run.stdout.contains(password), "\(servers), \(property): the password was shown")
            }
        }
    }

    @Test("the examples take the same options: their properties reach librdkafka, and a refused one is named with where it was set")
    func examplesTakeTheOptions() async throws {
        let fixture = try await makeFixture(partitions: 3, events: 0)
        defer { fixture.cluster.shutdown() }
        let config = try file("example.properties", "client.id=from-example-config\nno.such.property=1\n")
        let refused = try await ChildProcess("Quickstart", ["--bootstrap-servers", fixture.cluster.bootstrapServers, "--config", config])
            .wait(timeout: .seconds(60))
        #expect(refused.status == 1)
        #expect(
            refused.stderr.contains("\"no.such.property\"") && refused.stderr.contains("set by --config \(config) line 2"),
            "stderr: \(refused.stderr)")
        let runs = try await ChildProcess(
            "Quickstart",
            ["--bootstrap-servers", fixture.cluster.bootstrapServers, "-X", "client.id=from-example", "--property", "fetch.max.bytes=1048576"]
        ).wait(timeout: .seconds(60))
        #expect(runs.status == 0, "stderr: \(runs.stderr.suffix(2000))")
        #expect(runs.stdout.contains("Handled 30 events."), "stdout: \(runs.stdout)")
    }
}
