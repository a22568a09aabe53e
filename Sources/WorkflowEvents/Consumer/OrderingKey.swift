extension WorkflowEventConsumer {
    /// What decides which events must be handled one at a time, in offset order.
    public struct OrderingKey: Sendable {
        let key: @Sendable (WorkflowEvent) -> String

        /// One workflow's events in order (the default).
        public static let workflowID = OrderingKey { $0.workflowID }
        /// One run's events in order; events without a run are ordered by workflow.
        public static let workflowRunID = OrderingKey { $0.workflowRunID ?? "workflow:" + $0.workflowID }

        /// Any key: events with equal keys are handled one at a time, in offset order.
        /// Events with equal keys must be on one partition for the order to mean anything
        /// (Kafka orders a partition only).
        public static func custom(_ key: @escaping @Sendable (WorkflowEvent) -> String) -> OrderingKey {
            OrderingKey(key: key)
        }
    }
}
