import CUDADriver

/// A kernel of `Kernels/varlen_pad.cu`: a group of a packed variable-length batch measured
/// and copied into a padded dense batch, or the padded output copied back into the pack.
public struct VariableLengthKernelDescriptor: StagedInputKernel {
    /// The three kernels; one module holds them.
    public enum Stage: String, Hashable, Sendable, CaseIterable {
        /// K's channel mean and V's channel max |v| over each sequence's own tokens.
        case statistics
        /// The padded batch: each sequence's tokens, then padding.
        case pad
        /// The padded output's real rows back into the pack.
        case unpad
    }

    public static let source = "varlen_pad.cu"
    public static let namePrefix = "intfa_varlen"
    public var stage: Stage
    /// Element type of the pack's inputs.
    public var input: KernelFloatType
    /// NVRTC architecture, e.g. `sm_90`.
    public var arch: String

    /// Creates a descriptor from its fields.
    public init(stage: Stage, input: KernelFloatType, arch: String) {
        self.stage = stage
        self.input = input
        self.arch = arch
    }

    /// NVRTC options: the architecture, C++17, the input type and the group's most sequences.
    public var compileOptions: [String] { inputTypeOptions + ["-DINTFA_VARLEN_MAX_SEQUENCES=\(Self.maxSequences)"] }

    /// Sequences one padded group holds at most: their B + 1 offsets travel in the kernels'
    /// parameters (2 KB, within the 4 KB a launch may pass).
    public static let maxSequences = 512

    /// Threads per CTA: (32, 8) for the statistics, 128 for the copies.
    public var block: LaunchDimensions { stage == .statistics ? LaunchDimensions(32, 8) : LaunchDimensions(128) }

    /// Every stage for both input types on `arch`.
    public static func allVariants(arch: String) -> [VariableLengthKernelDescriptor] { everyStage(arch: arch) }
}
