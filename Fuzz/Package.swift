// swift-tools-version:6.0
// Fuzz targets for the readers of outside bytes (issue 13), built with libFuzzer and the address
// sanitizer by scripts/fuzz.sh; not part of the main package or its test build.
import Foundation
import PackageDescription

// The repository is a path dependency; SwiftPM names it after its folder, whatever the clone is called.
let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()

let package = Package(
    name: "HiddenMPIFuzz",
    dependencies: [.package(path: root.path)],
    targets: [
        .executableTarget(name: "FuzzReaders",
                          dependencies: [.product(name: "HiddenNetworks", package: root.lastPathComponent.lowercased())],
                          swiftSettings: [.unsafeFlags(["-parse-as-library"])]),
    ]
)
