/// The kernel of `Kernels/merge.cu`: merges a partial attention result (fp16/bf16, with its
/// log-sum-exp) into an fp32 accumulator.
public struct MergeKernelDescriptor: InputTypedKernel {
    public static let source = "merge.cu"
    public static let baseName = "intfa_merge_partial"
    /// Element type of the part.
    public var input: KernelFloatType
    /// NVRTC architecture, e.g. `sm_90`.
    public var arch: String

    /// Creates a descriptor from its fields.
    public init(input: KernelFloatType, arch: String) {
        self.input = input
        self.arch = arch
    }

    /// At most this many threads per CTA (`__launch_bounds__` of the kernel).
    public static let maxThreadsPerBlock = 256

    /// Threads per row (four channels each) and whole rows per CTA for head dim `headDim`
    /// (a multiple of 4, at most 4 · ``maxThreadsPerBlock``).
    public static func geometry(headDim: Int) -> (threadsPerRow: Int, rowsPerBlock: Int) {
        let threadsPerRow = headDim / 4
        return (threadsPerRow, max(1, maxThreadsPerBlock / threadsPerRow))
    }
}
