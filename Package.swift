// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "EFSC",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "efsc", targets: ["efsc"]),
        // What an application builds on: a provider's or consumer's program
        // (EFSCSDK: Trader, ChannelSession, TSCStore), the chain client and
        // channel protocol (EFSCChannel), and every module their public API
        // exposes. EFSCTCC and EFSCNode let an operator embed a TCC or a node.
        .library(name: "EFSCCore", targets: ["EFSCCore"]),
        .library(name: "EFSCIdentity", targets: ["EFSCIdentity"]),
        .library(name: "EFSCCredentials", targets: ["EFSCCredentials"]),
        .library(name: "EFSCStore", targets: ["EFSCStore"]),
        .library(name: "EFSCBus", targets: ["EFSCBus"]),
        .library(name: "EFSCLedger", targets: ["EFSCLedger"]),
        .library(name: "EFSCContracts", targets: ["EFSCContracts"]),
        .library(name: "EFSCChannel", targets: ["EFSCChannel"]),
        .library(name: "EFSCSDK", targets: ["EFSCSDK"]),
        .library(name: "EFSCConsensus", targets: ["EFSCConsensus"]),
        .library(name: "EFSCNode", targets: ["EFSCNode"]),
        .library(name: "EFSCTCC", targets: ["EFSCTCC"]),
        .library(name: "EFSCFuzz", targets: ["EFSCFuzz"]),
        .library(name: "EFSCAdversary", targets: ["EFSCAdversary"]),
        .library(name: "EFSCDevnet", targets: ["EFSCDevnet"]),
        .library(name: "EFSCReplay", targets: ["EFSCReplay"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/attaswift/BigInt.git", from: "6.0.1"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.6.0"),
        // Tests only: reading compose/docker-compose.yml.
        .package(url: "https://github.com/jpsim/Yams.git", from: "5.0.1"),
    ],
    targets: [
        // C libraries, each wrapped once by a thin Swift module.
        .systemLibrary(
            name: "CMosquitto", pkgConfig: "libmosquitto",
            providers: [.apt(["libmosquitto-dev"])]),
        .systemLibrary(
            name: "CRocksDB", pkgConfig: "rocksdb",
            providers: [.apt(["librocksdb-dev"])]),

        // Layer 1: crypto + canonical JSON.
        .target(name: "EFSCCore", dependencies: [
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "BigInt", package: "BigInt"),
        ]),
        // Layer 2: DIDs.
        .target(name: "EFSCIdentity", dependencies: ["EFSCCore"]),
        // Layer 3: VCs, Data Integrity proofs, templates, TIC/TSC.
        .target(name: "EFSCCredentials", dependencies: ["EFSCCore", "EFSCIdentity"]),
        // Layer 4: storage and bus wrappers.
        .target(name: "EFSCStore", dependencies: ["CRocksDB"]),
        .target(name: "EFSCBus", dependencies: ["CMosquitto", "EFSCCore"]),
        .target(name: "EFSCLedger", dependencies: ["EFSCCore", "EFSCStore"]),
        .target(name: "EFSCContracts", dependencies: ["EFSCCore", "EFSCIdentity", "EFSCCredentials", "EFSCLedger"]),
        // Layer 6: the node runtime (I/O around the pure consensus state machine).
        .target(name: "EFSCNode", dependencies: [
            "EFSCCore", "EFSCIdentity", "EFSCCredentials", "EFSCBus", "EFSCLedger", "EFSCConsensus", "EFSCContracts",
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),
        // Layer 6: channels — what TCCs and parties share (chain client, channel
        // protocol, settlement terms), the TCC service, and the party SDK.
        .target(name: "EFSCChannel", dependencies: ["EFSCCore", "EFSCIdentity", "EFSCCredentials", "EFSCBus", "EFSCLedger", "EFSCContracts"]),
        .target(name: "EFSCTCC", dependencies: [
            "EFSCCore", "EFSCIdentity", "EFSCCredentials", "EFSCBus", "EFSCStore", "EFSCLedger", "EFSCConsensus", "EFSCContracts", "EFSCChannel",
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),
        .target(name: "EFSCSDK", dependencies: ["EFSCCore", "EFSCIdentity", "EFSCCredentials", "EFSCBus", "EFSCLedger", "EFSCContracts", "EFSCChannel"]),
        // Layer 5: consensus (pure state machine). No unsafe flags anywhere, so
        // the package can be depended on by version: `make test` builds the
        // suite optimised (release with -enable-testing) to keep the simulator fast.
        .target(name: "EFSCConsensus", dependencies: ["EFSCCore"]),
        // Layer 7: a Byzantine replica's attacks (simulator, fuzzing, and
        // `efsc node byzantine` against a real network).
        .target(name: "EFSCDevnet", dependencies: ["EFSCCore", "EFSCIdentity", "EFSCBus", "EFSCChannel"]),
        // Layer 7: benchmark scenarios that run devnets (efsc bench channels).
        .target(name: "EFSCBench", dependencies: ["EFSCCore", "EFSCIdentity", "EFSCCredentials", "EFSCBus", "EFSCChannel", "EFSCSDK", "EFSCDevnet"]),
        // Layer 7: the verified event log and replay (efsc events, ledger replay).
        .target(name: "EFSCReplay", dependencies: ["EFSCCore", "EFSCIdentity", "EFSCCredentials", "EFSCBus", "EFSCStore", "EFSCLedger", "EFSCContracts", "EFSCConsensus", "EFSCChannel"]),
        .target(name: "EFSCAdversary", dependencies: ["EFSCCore", "EFSCConsensus", "EFSCBus", "EFSCLedger", "EFSCNode"]),
        // Layer 5: CLI commands as a library so tests can drive them in-process.
        .target(name: "EFSCCLI", dependencies: [
            "EFSCCore", "EFSCIdentity", "EFSCCredentials", "EFSCStore", "EFSCBus", "EFSCLedger", "EFSCConsensus", "EFSCContracts", "EFSCNode",
            "EFSCChannel", "EFSCTCC", "EFSCSDK", "EFSCAdversary", "EFSCDevnet", "EFSCReplay", "EFSCBench",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),
        .executableTarget(name: "efsc", dependencies: ["EFSCCLI"]),
        // Fuzz targets (network input → parsers and handlers); libFuzzer
        // drives them from fuzz/, the suite replays their corpus.
        .target(name: "EFSCFuzz", dependencies: [
            "EFSCCore", "EFSCIdentity", "EFSCCredentials", "EFSCBus", "EFSCLedger", "EFSCConsensus", "EFSCContracts", "EFSCNode", "EFSCChannel",
            "EFSCAdversary", "EFSCReplay",
        ]),
        .executableTarget(name: "efsc-fuzz", dependencies: ["EFSCFuzz"]),

        .testTarget(name: "EFSCCoreTests", dependencies: ["EFSCCore"]),
        .testTarget(name: "EFSCIdentityTests", dependencies: ["EFSCIdentity"]),
        .testTarget(name: "EFSCCredentialsTests", dependencies: ["EFSCCredentials"]),
        .testTarget(name: "EFSCStoreTests", dependencies: ["EFSCStore"]),
        .testTarget(name: "EFSCLedgerTests", dependencies: ["EFSCLedger", "EFSCBus"]),
        .testTarget(name: "EFSCContractsTests", dependencies: ["EFSCContracts"]),
        .testTarget(name: "EFSCBusTests", dependencies: ["EFSCBus", "EFSCCore"]),
        .testTarget(name: "EFSCConsensusTests", dependencies: ["EFSCConsensus", "EFSCAdversary", "EFSCCore"]),
        .testTarget(name: "EFSCCLITests", dependencies: ["EFSCCLI", "EFSCCore", "EFSCIdentity", "EFSCCredentials", "EFSCBus", "EFSCLedger", "EFSCContracts", "EFSCChannel", "EFSCTCC", "EFSCSDK", "EFSCDevnet", "EFSCConsensus", "EFSCReplay", "EFSCStore", .product(name: "Yams", package: "Yams")]),
        .testTarget(name: "EFSCNodeTests", dependencies: ["EFSCNode", "EFSCConsensus", "EFSCLedger", "EFSCCore", "EFSCBus"]),
        .testTarget(name: "EFSCChannelTests", dependencies: ["EFSCChannel", "EFSCTCC", "EFSCCore", "EFSCCredentials"], exclude: ["testdata"]),
        .testTarget(name: "EFSCReplayTests", dependencies: ["EFSCReplay", "EFSCConsensus", "EFSCLedger", "EFSCContracts", "EFSCCore"]),
        .testTarget(name: "EFSCFuzzTests", dependencies: ["EFSCFuzz", "EFSCCore"]),
    ]
)
