// swift-tools-version:6.2
import PackageDescription

let strictSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

/// One executable each under Examples/, runnable with `swift run NAME`.
let examples = [
    "Quickstart", "ScopedConsumer", "ManualPolling", "ManualCommit", "SeekAndPosition", "MultipleTopics",
    "BatchProcessing", "ConsumerGroup", "GracefulShutdown", "OrderedParallel", "RebalanceHandlers", "Replay",
]

let package = Package(
    name: "swift-workflow-events",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "WorkflowEvents", targets: ["WorkflowEvents"]),
        .library(name: "WorkflowEventsTesting", targets: ["WorkflowEventsTesting"]),
        .library(name: "WorkflowEventsService", targets: ["WorkflowEventsService"]),
        .executable(name: "workflow-events", targets: ["WorkflowEventsTool"]),
        .executable(name: "workflow-events-benchmarks", targets: ["WorkflowEventsBenchmarks"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.1.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        .package(url: "https://github.com/apple/swift-distributed-tracing", from: "1.1.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.4.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CRDKafka",
            pkgConfig: "rdkafka",
            providers: [.apt(["librdkafka-dev"])]
        ),
        .target(
            name: "WorkflowEvents",
            dependencies: [
                "CRDKafka",
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "WorkflowEventsService",
            dependencies: [
                "WorkflowEvents",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "WorkflowEventsTesting",
            dependencies: ["CRDKafka", "WorkflowEvents"],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "WorkflowEventsTool",
            dependencies: [
                "WorkflowEvents",
                "WorkflowEventsTesting",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/workflow-events",
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "WorkflowEventsBenchmarks",
            dependencies: [
                "CRDKafka",
                "WorkflowEvents",
                "WorkflowEventsTesting",
                "MallocCounter",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/WorkflowEventsBenchmarks",
            swiftSettings: strictSettings
        ),
        .target(name: "MallocCounter", path: "Benchmarks/MallocCounter"),
        .target(
            name: "ExampleSupport",
            dependencies: [
                "WorkflowEvents",
                "WorkflowEventsTesting",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Examples/Support",
            swiftSettings: strictSettings
        ),
        .target(
            name: "TestSupport",
            dependencies: [
                "WorkflowEvents",
                "WorkflowEventsTesting",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "InMemoryLogging", package: "swift-log"),
            ],
            path: "Tests/TestSupport",
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "ReliabilityConsumer",
            dependencies: [
                "TestSupport",
                "WorkflowEvents",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/ReliabilityConsumer",
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "OutageSequence",
            dependencies: [
                "TestSupport",
                "WorkflowEvents",
                "WorkflowEventsTesting",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/OutageSequence",
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "CoreTests",
            dependencies: [
                "WorkflowEvents",
                "WorkflowEventsTesting",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "InMemoryLogging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                "WorkflowEventsService",
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "ReliabilityTests",
            dependencies: [
                "TestSupport",
                "ReliabilityConsumer",
                "WorkflowEvents",
                "WorkflowEventsTesting",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "InMemoryLogging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "WorkflowEventsTests",
            dependencies: [
                "TestSupport",
                "ReliabilityConsumer",
                "WorkflowEvents",
                "WorkflowEventsService",
                .product(name: "MetricsTestKit", package: "swift-metrics"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "InMemoryTracing", package: "swift-distributed-tracing"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                "WorkflowEventsTool",
                "WorkflowEventsTesting",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "InMemoryLogging", package: "swift-log"),
            ] + (examples + ["ServiceGroup"]).map { .target(name: $0) },
            swiftSettings: strictSettings
        ),
    ]
        + examples.map { name in
            .executableTarget(
                name: name, dependencies: ["ExampleSupport", "WorkflowEvents"], path: "Examples/\(name)",
                swiftSettings: strictSettings)
        }
        + [
            .executableTarget(
                name: "ServiceGroup",
                dependencies: [
                    "ExampleSupport", "WorkflowEvents", "WorkflowEventsService",
                    .product(name: "Logging", package: "swift-log"),
                    .product(name: "Metrics", package: "swift-metrics"),
                    .product(name: "Prometheus", package: "swift-prometheus"),
                    .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                    .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                ],
                path: "Examples/ServiceGroup", swiftSettings: strictSettings)
        ]
)
