// swift-tools-version:6.1
// Microbenchmarks with ordo-one/benchmark: decoding and reading a stream, their allocations
// checked in CI against Thresholds/ (deterministic), their times reported only.
//   cd Benchmarks/Micro && swift package benchmark
//   swift package benchmark thresholds check        (what CI runs, through make bench-check)
//   swift package --allow-writing-to-package-directory benchmark thresholds update --metric mallocCountTotal
import PackageDescription

let package = Package(
    name: "workflow-events-microbenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "swift-workflow-events", path: "../.."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.0", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "Decoding",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "WorkflowEvents", package: "swift-workflow-events"),
                .product(name: "WorkflowEventsTesting", package: "swift-workflow-events"),
            ],
            path: "Benchmarks/Decoding",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .executableTarget(
            name: "Reading",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "WorkflowEvents", package: "swift-workflow-events"),
                .product(name: "WorkflowEventsTesting", package: "swift-workflow-events"),
            ],
            path: "Benchmarks/Reading",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)
