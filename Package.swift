// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "IntFlashAttention",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "IntFlashAttention", targets: ["IntFlashAttention"]),
        .executable(name: "intfa", targets: ["intfa"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // Vectorized CPU micro-kernels (AVX-512 VNNI / AVX-VNNI / AVX2 / scalar),
        // chosen at run time from the CPU's features.
        .target(
            name: "CIntFlashAttentionCPU",
            cSettings: [.unsafeFlags(["-O3"])]
        ),
        // dlopen layer over the CUDA driver API and NVRTC: building needs no CUDA.
        .target(name: "CUDADriver"),
        // Turns the `.cu` kernel sources into Swift string constants at build time,
        // so the `intfa` binary is self-contained.
        .executableTarget(name: "KernelSourceEmbedder"),
        .plugin(
            name: "EmbedKernelSources",
            capability: .buildTool(),
            dependencies: ["KernelSourceEmbedder"]
        ),
        .target(
            name: "IntFlashAttention",
            dependencies: ["CIntFlashAttentionCPU", "CUDADriver"],
            plugins: ["EmbedKernelSources"]
        ),
        .target(
            name: "IntFACommands",
            dependencies: [
                "IntFlashAttention",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(name: "intfa", dependencies: ["IntFACommands"]),
        .testTarget(name: "IntFlashAttentionTests", dependencies: ["IntFlashAttention"]),
        .testTarget(name: "CUDADriverTests", dependencies: ["CUDADriver", "IntFlashAttention"]),
        .testTarget(name: "IntFACommandsTests", dependencies: ["IntFACommands"]),
    ]
)
