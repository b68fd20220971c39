// swift-tools-version: 6.0
// The grpc-swift-2 baseline for the bridge benchmark (built by scripts/bench-grpc.sh, not by CI).
import PackageDescription

let package = Package(
    name: "GRPCSwift2Echo",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: "../.."),
        .package(url: "https://github.com/grpc/grpc-swift-2", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport", from: "2.9.2"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf", from: "2.4.1"),
    ],
    targets: [
        .executableTarget(
            name: "GRPCSwift2Echo",
            dependencies: [
                .product(name: "MusterProto", package: "main"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
            ]
        )
    ],
    swiftLanguageModes: [.v6]
)
