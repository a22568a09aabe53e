import Testing

@testable import WorkflowEvents

/// What the client does differently for the librdkafka it runs with, without a cluster.
@Suite("librdkafka versions")
struct LibrdkafkaVersionTests {
    let librdkafka202 = 0x0200_02ff
    let librdkafka210 = 0x0201_00ff

    @Test("a seek waits for librdkafka as long as it was told to, also before librdkafka 2.1 (which waited a thousandth of it)")
    func seekTimeoutUnits() {
        #expect(RDKafkaConsumerClient.seekTimeoutArgument(.seconds(10), librdkafkaVersion: librdkafka202) == 10_000_000)
        #expect(RDKafkaConsumerClient.seekTimeoutArgument(.seconds(10), librdkafkaVersion: librdkafka210) == 10_000)
        #expect(RDKafkaConsumerClient.seekTimeoutArgument(.seconds(86_400), librdkafkaVersion: librdkafka202) == Int32.max)
    }
}
