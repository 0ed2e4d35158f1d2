// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "IntFlashAttention",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "IntFlashAttention", targets: ["IntFlashAttention"]),
        // The C interface (include/intfa.h) as a shared library: libintfa_c.so.
        .library(name: "intfa_c", type: .dynamic, targets: ["IntFlashAttentionC"]),
        .executable(name: "intfa", targets: ["intfa"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // Vectorized CPU micro-kernels (AVX-512 VNNI / AVX-VNNI / AVX2 / scalar),
        // chosen at run time from the CPU's features.
        .target(name: "CIntFlashAttentionCPU"),
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
        // The types of include/intfa.h, shared by the C interface and its callers.
        .target(name: "CIntFlashAttentionABI"),
        // intfa.h's functions, exported from Swift with @_cdecl.
        .target(name: "IntFlashAttentionC", dependencies: ["IntFlashAttention", "CIntFlashAttentionABI", "CUDADriver"]),
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
        // A kernel family defined outside the library (NaiveFamily/: Swift and its .cu),
        // registered with one line: the family architecture's test.
        .testTarget(
            name: "KernelFamilyTests",
            dependencies: ["IntFACommands", "IntFlashAttention", "CUDADriver"],
            plugins: ["EmbedKernelSources"]
        ),
    ]
)
