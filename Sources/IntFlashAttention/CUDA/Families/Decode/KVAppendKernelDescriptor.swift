/// One kernel of `kv_append.cu` (appending tokens to the paged INT8 KV cache): K's channel
/// means of new sequences, the coding of the new tokens, or the length update, for one input
/// element type. The three share one module (the same source and options).
public struct KVAppendKernelDescriptor: StagedInputKernel {
    /// The kernels of one append, in launch order.
    public enum Stage: String, Hashable, Sendable, CaseIterable {
        /// K's channel means of each sequence still empty.
        case means
        /// K − mean and V coded into the new tokens' slots.
        case append
        /// Each sequence's length advanced by the new tokens.
        case advance
    }

    public static let source = "kv_append.cu"
    public static let namePrefix = "intfa_kv"
    public var stage: Stage
    /// Element type of the new keys and values.
    public var input: KernelFloatType
    /// NVRTC architecture, e.g. `sm_90`.
    public var arch: String

    /// Creates a descriptor from its fields.
    public init(stage: Stage, input: KernelFloatType, arch: String) {
        self.stage = stage
        self.input = input
        self.arch = arch
    }

    /// Threads per CTA of each stage (their `__launch_bounds__`): the append kernel codes one
    /// token row of one KV head per warp.
    public var threadsPerBlock: Int { stage == .append ? 256 : 128 }

    /// Every append kernel for `arch` (sm_80 and later, as decode).
    public static func allVariants(arch: String) -> [KVAppendKernelDescriptor] {
        guard (MMAKernelDescriptor.smVersion(arch) ?? 0) >= 80 else { return [] }
        return everyStage(arch: arch)
    }
}
