extension WorkflowEventConsumer {
    /// Bounds on the events ``process(topics:maxConcurrency:orderingKey:limits:_:)`` holds.
    public struct ProcessingLimits: Sendable, Hashable {
        /// Events taken but not finished, in all; beyond it every partition is paused.
        public var maxBufferedEvents: Int
        /// Events taken but not finished, per partition; beyond it that partition is paused.
        public var maxBufferedEventsPerPartition: Int
        /// How long cancellation, and the revocation of partitions, wait for handlers in
        /// flight before cancelling them (cancellation) or handing over anyway (revocation).
        public var drainTimeout: Duration
        /// How much longer than `drainTimeout` a rebalance waits for `process` to hand
        /// partitions over before it goes on without it.
        var revocationReplyGrace: Duration = .seconds(2)

        /// Limits; the defaults hold about 10 MB of events of the contract's size.
        public init(maxBufferedEvents: Int = 10_000, maxBufferedEventsPerPartition: Int = 2_000, drainTimeout: Duration = .seconds(10)) {
            self.maxBufferedEvents = maxBufferedEvents
            self.maxBufferedEventsPerPartition = maxBufferedEventsPerPartition
            self.drainTimeout = drainTimeout
        }
    }
}
