// swift-tools-version: 6.0
import PackageDescription

// `MUSTER_BRIDGE_ONLY=1` declares only the gRPC bridge and identity modules, so
// the sanitizer runs in scripts/test.sh build those and not the HTTP/SQL stack.
let bridgeOnly = Context.environment["MUSTER_BRIDGE_ONLY"] == "1"
// `MUSTER_FUZZ=1` declares only the libFuzzer targets in `Fuzz/` and what they exercise (scripts/fuzz.sh builds
// them with `--sanitize=fuzzer --sanitize=address`; libFuzzer supplies `main`).
let fuzz = Context.environment["MUSTER_FUZZ"] == "1"

let x509 = Target.Dependency.product(name: "X509", package: "swift-certificates")
let crypto = Target.Dependency.product(name: "Crypto", package: "swift-crypto")
let asn1 = Target.Dependency.product(name: "SwiftASN1", package: "swift-asn1")
let logging = Target.Dependency.product(name: "Logging", package: "swift-log")
let argumentParser = Target.Dependency.product(name: "ArgumentParser", package: "swift-argument-parser")

// How the four shipped executables are linked on Linux: with LLVM's linker (`lld`, in the Swift toolchain), no
// symbols exported (the static runtime's `-export-dynamic` put 50,000 into the dynamic symbol table, which the loader
// reads at every start and nothing looks up), and relative relocations packed (DT_RELR, glibc 2.36) instead of a
// 3 MiB table of 130,000 entries. Together a poller maps about 6 MiB less (Docs/benchmarks.md, "A poller holding 10,000
// packages").
let shippedLinking: [LinkerSetting] = [
    .unsafeFlags(
        ["-use-ld=lld", "-Xlinker", "--no-export-dynamic", "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs"],
        .when(platforms: [.linux]))
]

var products: [Product] = [
    .library(name: "MusterGRPC", targets: ["MusterGRPC"]),
    .library(name: "MusterProto", targets: ["MusterProto"]),
    .executable(name: "muster-grpc-demo", targets: ["MusterGRPCDemo"]),
    .executable(name: "muster-bench", targets: ["MusterBench"]),
]

var dependencies: [Package.Dependency] = [
    .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
    .package(url: "https://github.com/apple/swift-certificates", from: "1.21.1"),
    .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
    .package(url: "https://github.com/apple/swift-asn1", from: "1.7.4"),
    .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
]

var targets: [Target] = [
    // gRPC core from Debian's libgrpc-dev, linked by library name.
    .systemLibrary(name: "CGRPCCore"),
    // The few C helpers Swift cannot express (macros over unions, a socket option, absl's C++-only mutex mode).
    .target(
        name: "CMusterGRPCShim", dependencies: ["CGRPCCore"],
        linkerSettings: [.linkedLibrary("absl_synchronization")]),
    // Generated protobuf messages (see scripts/generate-protos.sh).
    .target(name: "MusterProto", dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf")]),
    // The lock and the one-shot value every concurrent module shares (no other dependency).
    .target(name: "MusterConcurrency"),
    // The coded-error shape every module's errors share (no other dependency).
    .target(name: "MusterErrors"),
    // SPIFFE IDs, X.509-SVIDs, the embedded CA, trust bundles and join tokens.
    .target(
        name: "MusterIdentity",
        dependencies: ["MusterErrors", x509, crypto, .product(name: "_CryptoExtras", package: "swift-crypto"), asn1]
    ),
    // The async Swift bridge over gRPC core: the only module that imports the shim.
    .target(
        name: "MusterGRPC",
        dependencies: [
            "CGRPCCore", "CMusterGRPCShim", "MusterConcurrency", "MusterProto", "MusterIdentity",
            .product(name: "SwiftProtobuf", package: "swift-protobuf"), x509, crypto, asn1, logging,
        ]
    ),
    // An echo service over every call kind, for the demo, the tests and the benchmark.
    .target(name: "MusterEcho", dependencies: ["MusterGRPC", "MusterProto"]),
    .executableTarget(
        name: "MusterGRPCDemo",
        dependencies: [
            "MusterGRPC", "MusterEcho", "MusterIdentity", "MusterProto", argumentParser, x509, crypto, logging,
        ]
    ),
    .executableTarget(name: "MusterBench", dependencies: ["MusterIdentity", x509, crypto, asn1]),
    .testTarget(
        name: "MusterGRPCTests",
        dependencies: [
            "MusterConcurrency", "MusterGRPC", "MusterEcho", "MusterIdentity", "MusterProto", x509, crypto, asn1,
        ]
    ),
    .testTarget(
        name: "MusterIdentityTests",
        dependencies: ["MusterIdentity", x509, crypto, asn1],
        exclude: ["judge_pyspiffe.py"]
    ),
]

if !bridgeOnly {
    dependencies += [
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/vapor/sql-kit", from: "3.36.0"),
        .package(url: "https://github.com/vapor/sqlite-kit", from: "4.5.2"),
        .package(url: "https://github.com/vapor/postgres-kit", from: "2.17.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
    ]
    products += [
        .executable(name: "muster-core", targets: ["MusterCoreMain"]),
        .executable(name: "muster", targets: ["MusterCLI"]),
        .executable(name: "muster-poller", targets: ["MusterPollerMain"]),
        .executable(name: "muster-agent", targets: ["MusterAgentMain"]),
    ]
    targets += [
        // libarchive from Debian's libarchive-dev: writes and reads package tarballs.
        .systemLibrary(name: "CArchive"),
        // Package archives (tar.gz) written and read through libarchive.
        .target(name: "MusterArchive", dependencies: ["CArchive", "MusterErrors"]),
        // The connection and transaction layer over SQLite and PostgreSQL that Core's store and the poller's
        // cache share: pool, transactions, error mapping, migrations runner, LISTEN/NOTIFY. No schema.
        .target(
            name: "MusterDatabase",
            dependencies: [
                "MusterErrors",
                .product(name: "SQLKit", package: "sql-kit"),
                .product(name: "SQLiteKit", package: "sqlite-kit"),
                .product(name: "PostgresKit", package: "postgres-kit"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                logging,
            ]
        ),
        // Core's store: its schema, records and named operations, over MusterDatabase.
        .target(
            name: "MusterStore",
            dependencies: [
                "MusterDatabase", "MusterErrors", "MusterIdentity", .product(name: "SQLKit", package: "sql-kit"),
                logging,
            ]
        ),
        // Core's control plane: lifecycle, auth, HTTP API, events, reaper, gRPC onboarding.
        .target(
            name: "MusterCore",
            dependencies: [
                "MusterConcurrency", "MusterErrors", "MusterRuntime", "MusterStore", "MusterIdentity", "MusterGRPC",
                "MusterProto", "MusterArchive", "MusterEdge",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                x509, crypto, asn1, logging,
            ]
        ),
        // glibc's malloc tuning, which Swift's Glibc module leaves out (no library to link: it is libc).
        .systemLibrary(name: "CMusterMalloc"),
        // What the executables share: logging bootstrap, exit codes, services under one ServiceGroup.
        .target(
            name: "MusterRuntime",
            dependencies: [
                "MusterErrors", "MusterGRPC", argumentParser, logging,
                .target(name: "CMusterMalloc", condition: .when(platforms: [.linux])),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "MusterCoreMain",
            dependencies: ["MusterCore", "MusterRuntime", "MusterStore", "MusterIdentity", argumentParser, logging],
            linkerSettings: shippedLinking),
        .executableTarget(name: "MusterCLI", dependencies: [argumentParser], linkerSettings: shippedLinking),
        // What edge hosts share: package installation (and, with the relay, joining and renewal).
        .target(
            name: "MusterEdge",
            dependencies: ["MusterArchive", "MusterErrors", "MusterIdentity", "MusterProto", x509, crypto, asn1]),
        // The poller: attestation to Core, its identity on disk, the package cache (its own SQLite schema over
        // MusterDatabase), the link to Core, and EdgeOnboarding for the agents on its segment.
        .target(
            name: "MusterPoller",
            dependencies: [
                "MusterConcurrency", "MusterDatabase", "MusterEdge", "MusterErrors", "MusterGRPC", "MusterProto",
                "MusterIdentity", "MusterRuntime",
                .product(name: "SQLKit", package: "sql-kit"), x509, crypto, asn1, logging,
            ]
        ),
        // The agent/checker: joins its poller (package or join command), keeps its SVID renewed.
        .target(
            name: "MusterAgent",
            dependencies: [
                "MusterEdge", "MusterErrors", "MusterGRPC", "MusterProto", "MusterIdentity", "MusterRuntime", x509,
                crypto, asn1, logging,
            ]
        ),
        .executableTarget(
            name: "MusterAgentMain",
            dependencies: ["MusterAgent", "MusterEdge", "MusterIdentity", "MusterRuntime", argumentParser, logging],
            linkerSettings: shippedLinking),
        .executableTarget(
            name: "MusterPollerMain",
            dependencies: [
                "MusterEdge", "MusterPoller", "MusterGRPC", "MusterIdentity", "MusterRuntime", argumentParser, logging,
            ],
            linkerSettings: shippedLinking),
        .testTarget(
            name: "MusterCoreTests",
            dependencies: [
                "MusterConcurrency", "MusterCore", "MusterGRPC", "MusterIdentity", "MusterStore",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"), logging,
            ]
        ),
        .testTarget(
            name: "MusterPollerTests",
            dependencies: [
                "MusterPoller", "MusterDatabase", "MusterRuntime", .product(name: "SQLKit", package: "sql-kit"),
                logging,
            ]),
        .testTarget(
            name: "MusterStoreTests",
            dependencies: [
                "MusterStore", "MusterCore", "MusterArchive", "MusterIdentity", "MusterEdge", "MusterConcurrency",
                .product(name: "SQLKit", package: "sql-kit"), .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"), logging,
            ]
        ),
    ]
}

if fuzz {
    let exercised: Set<String> = [
        "MusterErrors", "MusterProto", "MusterIdentity", "CArchive", "MusterArchive", "MusterEdge",
    ]
    let fuzzers: [(String, [Target.Dependency])] = [
        ("FuzzArchive", ["MusterArchive", "MusterEdge"]), ("FuzzCSR", ["MusterIdentity"]),
        ("FuzzSPIFFEID", ["MusterIdentity"]),
        ("FuzzBundle", ["MusterIdentity"]), ("FuzzManifest", ["MusterEdge", "MusterIdentity"]),
        (
            "FuzzRequests",
            ["MusterIdentity", "MusterProto", .product(name: "SwiftProtobuf", package: "swift-protobuf")]
        ),
    ]
    targets =
        targets.filter { exercised.contains($0.name) }
        + fuzzers.map { .executableTarget(name: $0.0, dependencies: $0.1, path: "Fuzz/\($0.0)") }
    products = fuzzers.map { .executable(name: $0.0, targets: [$0.0]) }
}

let package = Package(
    name: "Muster",
    platforms: [.macOS(.v15)],
    products: products,
    dependencies: dependencies,
    targets: targets,
    swiftLanguageModes: [.v6]
)
