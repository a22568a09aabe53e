// A service's start, which may come before Kafka's: waiting for the cluster.

import Logging

extension WorkflowEventConsumer {
    /// The longest wait between two attempts to reach the cluster.
    static let clusterRetryCeiling = Duration.seconds(30)
    /// The longest an attempt waits for a bootstrap server, so that a stop is seen soon (an
    /// attempt is not interrupted).
    static let clusterAttemptCeiling = Duration.seconds(5)
    /// How often the warning that no bootstrap server answers is repeated.
    static let clusterWarningInterval = Duration.seconds(30)

    /// Waits until a bootstrap server answers (see ``waitForCluster(stop:)``); false when
    /// the task was cancelled meanwhile.
    package func waitForCluster() async throws -> Bool {
        try await waitForCluster(stop: nil)
    }

    /// Waits until a bootstrap server answers, trying again with backoff (1 s, doubling up to
    /// 30 s) and logging a warning at the first failure and every 30 s after it. Returns
    /// false, without error, when `stop` is set or the task is cancelled meanwhile.
    ///
    /// - Throws: ``KafkaError`` once `configuration.clusterWaitLimit` has passed.
    func waitForCluster(stop: StopFlag?) async throws -> Bool {
        try checkOpen("wait for the cluster")
        // Subscribed: the cluster has answered already.
        if subscription != nil { return true }
        let started = clock.now()
        var attempts = 0
        var warned: ContinuousClock.Instant?
        let servers = configuration.bootstrapServers
        while true {
            if Task.isCancelled || stop?.isSet == true || !machine.isOpen { return false }
            do {
                try await client.checkConnection(timeout: min(configuration.connectionTimeout, Self.clusterAttemptCeiling))
                if attempts > 0 {
                    logger.info(
                        "a bootstrap server answers", metadata: ["kafka.bootstrap_servers": "\(servers)", "waited": "\(clock.now() - started)"])
                }
                return true
            } catch let error as KafkaError {
                attempts += 1
                let now = clock.now()
                let waited = now - started
                if let limit = configuration.clusterWaitLimit, waited >= limit {
                    throw KafkaError(
                        code: error.code,
                        message:
                            "no bootstrap server of '\(servers)' answered within \(waited) (\(attempts) attempts, clusterWaitLimit \(limit)): \(error.message)",
                        operation: "wait for the cluster", isFatal: false, isRetriable: true)
                }
                if warned.map({ now - $0 >= Self.clusterWarningInterval }) ?? true {
                    warned = now
                    logger.warning(
                        "no bootstrap server answers; trying again until one does",
                        metadata: ["kafka.bootstrap_servers": "\(servers)", "waited": "\(waited)", "error": "\(error.message)"])
                }
                var backoff = min(Self.clusterRetryCeiling, .seconds(1) * (1 << min(attempts - 1, 5)))
                if let limit = configuration.clusterWaitLimit { backoff = min(backoff, max(.zero, limit - waited)) }
                // Until the next attempt, or the stop.
                if let stop {
                    await stop.sleep(for: backoff, on: clock)
                } else {
                    try? await clock.sleep(for: backoff)
                }
            }
        }
    }
}
