/// The kernel of `Kernels/merge.cu`: merges a partial attention result (fp16/bf16, with its
/// log-sum-exp) into an fp32 accumulator.
public struct MergeKernelDescriptor: KernelVariant {
    /// Element type of the part.
    public var input: KernelFloatType
    /// NVRTC architecture, e.g. `sm_90`.
    public var arch: String

    /// Creates a descriptor from its fields.
    public init(input: KernelFloatType, arch: String) {
        self.input = input
        self.arch = arch
    }

    /// The embedded source, `Kernels/merge.cu`.
    public var sourceFile: String { "merge.cu" }

    /// The `extern "C"` name; `merge.cu` spells the same.
    public var kernelName: String { "intfa_merge_partial_\(input == .bfloat16 ? "bf16" : "f16")" }

    /// NVRTC options: the architecture, C++17 and the part's element type.
    public var compileOptions: [String] {
        ["-arch=\(arch)", "-std=c++17", "-DINTFA_INPUT_BF16=\(input == .bfloat16 ? 1 : 0)"]
    }

    /// Zero: the kernel needs no dynamic shared memory.
    public var sharedMemoryBytes: Int { 0 }

    /// At most this many threads per CTA (`__launch_bounds__` of the kernel).
    public static let maxThreadsPerBlock = 256

    /// Threads per row (four channels each) and whole rows per CTA for head dim `headDim`
    /// (a multiple of 4, at most 4 · ``maxThreadsPerBlock``).
    public static func geometry(headDim: Int) -> (threadsPerRow: Int, rowsPerBlock: Int) {
        let threadsPerRow = headDim / 4
        return (threadsPerRow, max(1, maxThreadsPerBlock / threadsPerRow))
    }

    /// Both part types for `arch`.
    public static func allVariants(arch: String) -> [MergeKernelDescriptor] {
        KernelFloatType.allCases.map { MergeKernelDescriptor(input: $0, arch: arch) }
    }
}
