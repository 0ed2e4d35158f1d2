/// One kernel of `kv_append.cu` (appending tokens to the paged INT8 KV cache): K's channel
/// means of new sequences, the coding of the new tokens, or the length update, for one input
/// element type. The three share one module (the same source and options).
public struct KVAppendKernelDescriptor: KernelVariant {
    /// The kernels of one append, in launch order.
    public enum Stage: String, Hashable, Sendable, CaseIterable {
        /// K's channel means of each sequence still empty.
        case means
        /// K − mean and V coded into the new tokens' slots.
        case append
        /// Each sequence's length advanced by the new tokens.
        case advance
    }

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

    public var sourceFile: String { "kv_append.cu" }

    /// The `extern "C"` name, as `input_type.cuh` builds it.
    public var kernelName: String { "intfa_kv_\(stage.rawValue)_\(input.rawValue)" }

    /// NVRTC options: the architecture, C++17 and the input type.
    public var compileOptions: [String] {
        ["-arch=\(arch)", "-std=c++17", "-DINTFA_INPUT_BF16=\(input == .bfloat16 ? 1 : 0)"]
    }

    /// Zero: the kernels' shared memory is static.
    public var sharedMemoryBytes: Int { 0 }

    /// Threads per CTA of each stage (their `__launch_bounds__`): the append kernel codes one
    /// token row of one KV head per warp.
    public var threadsPerBlock: Int { stage == .append ? 256 : 128 }

    /// Every append kernel for `arch` (sm_80 and later, as decode).
    public static func allVariants(arch: String) -> [KVAppendKernelDescriptor] {
        guard (MMAKernelDescriptor.smVersion(arch) ?? 0) >= 80 else { return [] }
        return Stage.allCases.flatMap { stage in
            KernelFloatType.allCases.map { KVAppendKernelDescriptor(stage: stage, input: $0, arch: arch) }
        }
    }
}
