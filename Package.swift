// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "Muster",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "MusterGRPC", targets: ["MusterGRPC"]),
        .library(name: "MusterProto", targets: ["MusterProto"]),
        .executable(name: "muster-grpc-demo", targets: ["MusterGRPCDemo"]),
        .executable(name: "muster-bench", targets: ["MusterBench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        .package(url: "https://github.com/apple/swift-certificates", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-asn1", from: "1.7.4"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        // gRPC core from Debian's libgrpc-dev, linked by library name.
        .systemLibrary(name: "CGRPCCore"),
        // The few C helpers Swift cannot express (macros over unions).
        .target(name: "CMusterGRPCShim", dependencies: ["CGRPCCore"]),
        // Generated protobuf messages (see scripts/generate-protos.sh).
        .target(
            name: "MusterProto",
            dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf")]
        ),
        // SPIFFE IDs, X.509-SVIDs, the embedded CA, trust bundles and join tokens.
        .target(
            name: "MusterIdentity",
            dependencies: [
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
            ]
        ),
        // The async Swift bridge over gRPC core: the only module that imports the shim.
        .target(
            name: "MusterGRPC",
            dependencies: [
                "CGRPCCore",
                "CMusterGRPCShim",
                "MusterProto",
                "MusterIdentity",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // An echo service over every call kind, for the demo, the tests and the benchmark.
        .target(name: "MusterEcho", dependencies: ["MusterGRPC", "MusterProto"]),
        .executableTarget(
            name: "MusterGRPCDemo",
            dependencies: [
                "MusterGRPC",
                "MusterEcho",
                "MusterIdentity",
                "MusterProto",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "MusterBench",
            dependencies: [
                "MusterIdentity",
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
            ]
        ),
        .testTarget(
            name: "MusterGRPCTests",
            dependencies: [
                "MusterGRPC",
                "MusterEcho",
                "MusterIdentity",
                "MusterProto",
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
            ]
        ),
        .testTarget(
            name: "MusterIdentityTests",
            dependencies: [
                "MusterIdentity",
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
            ],
            exclude: ["judge_pyspiffe.py"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
