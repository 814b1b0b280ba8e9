// swift-tools-version:6.0
// An IoT/edge provider's own program, built on EFSC as a versioned dependency.
//
// EFSC is named by URL and version like any other package. Where your copy of
// EFSC is hosted elsewhere (a mirror, a local clone with tags), set
// EFSC_PACKAGE_URL to its git URL (for example file:///srv/git/efsc) when you
// resolve; the version requirement stays the same.
import PackageDescription

let efscURL = Context.environment["EFSC_PACKAGE_URL"] ?? "https://github.com/efsc/efsc.git"

let package = Package(
    name: "SwiftProvider",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(url: efscURL, from: "0.1.0")
    ],
    targets: [
        .executableTarget(
            name: "swift-provider",
            dependencies: [
                .product(name: "EFSCSDK", package: "efsc"),
                .product(name: "EFSCChannel", package: "efsc"),
                .product(name: "EFSCBus", package: "efsc"),
                .product(name: "EFSCCore", package: "efsc"),
                .product(name: "EFSCCredentials", package: "efsc"),
            ],
            path: "Sources/SwiftProvider")
    ]
)
