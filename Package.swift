// swift-tools-version:5.10
import PackageDescription

let package = Package(
    name: "hidden-mpi",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "hidden-mpi", targets: ["hidden-mpi"]),
        .library(name: "HiddenNetworks", targets: ["HiddenNetworks"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // C shims: module maps and static inline wrappers only, no public API of their own.
        .systemLibrary(name: "CMPI", path: "Sources/CMPI", pkgConfig: "ompi-c",
                       providers: [.apt(["libopenmpi-dev"])]),
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CZlib", path: "Sources/CZlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CTurboJPEG", path: "Sources/CTurboJPEG", pkgConfig: "libturbojpeg",
                       providers: [.apt(["libturbojpeg0-dev"])]),
        // Hot loops of the exact reduction and of batch norm, ReLU and the residual adds, with an
        // AVX2 path chosen at run time (the same bits either way); the direct 3x3 convolution's
        // AVX-512 and AVX2 kernels (with portable loops of the same bits).
        .target(name: "CKernels", path: "Sources/CKernels"),
        // The library: Swift over BLAS (and CKernels); never imports MPI. Built with the checks
        // (-O, not -Ounchecked): it parses files from elsewhere, and the checks cost nothing
        // measurable (Docs/performance.md, "Checked build").
        .target(name: "HiddenNetworks", dependencies: ["CBLAS", "CZlib", "CKernels", "CTurboJPEG"]),
        // The MPI communicator: the only importer of CMPI.
        .target(name: "HiddenMPI", dependencies: ["CMPI", "HiddenNetworks"]),
        .executableTarget(name: "hidden-mpi", dependencies: [
            "HiddenNetworks", "HiddenMPI",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .testTarget(name: "HiddenNetworksTests", dependencies: ["HiddenNetworks", "CKernels", "CTurboJPEG"]),
        .testTarget(name: "HiddenMPITests", dependencies: ["HiddenNetworks"]),
    ]
)
