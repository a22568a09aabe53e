// swift-tools-version:6.2
// A consumer of workflow events beside an HTTP server (Hummingbird) in one ServiceGroup: a
// package of its own, so that the library's users do not resolve an HTTP server.
import PackageDescription

let package = Package(
    name: "HTTPService",
    platforms: [.macOS(.v15)],
    dependencies: [
        // In your own package: .package(url: "https://github.com/OWNER/swift-workflow-events.git", from: "1.0.0")
        .package(name: "swift-workflow-events", path: "../.."),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.6.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
    ],
    targets: [
        .executableTarget(
            name: "HTTPService",
            dependencies: [
                .product(name: "WorkflowEvents", package: "swift-workflow-events"),
                .product(name: "WorkflowEventsService", package: "swift-workflow-events"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        )
    ]
)
