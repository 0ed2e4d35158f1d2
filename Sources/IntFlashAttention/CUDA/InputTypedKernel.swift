extension KernelFloatType {
    /// NVRTC options of a helper kernel (`input_type.cuh`) for this input type on `arch`:
    /// the architecture, C++17 and `-DINTFA_INPUT_BF16`.
    func helperOptions(arch: String) -> [String] {
        ["-arch=\(arch)", "-std=c++17", "-DINTFA_INPUT_BF16=\(self == .bfloat16 ? 1 : 0)"]
    }
}

/// A helper kernel compiled once per input element type (`Kernels/input_type.cuh`): the
/// source picks fp16 or bf16 with `-DINTFA_INPUT_BF16`, and the kernel's name is its base name
/// followed by `_f16` or `_bf16`. A conforming descriptor gives its source, base name and
/// fields; the rest is shared.
public protocol InputTypedKernel: KernelVariant {
    /// The embedded source file.
    static var source: String { get }
    /// The kernel name before its element-type suffix, e.g. `intfa_merge_partial`.
    static var baseName: String { get }
    /// The input's element type.
    var input: KernelFloatType { get }
    init(input: KernelFloatType, arch: String)
}

extension InputTypedKernel {
    public var sourceFile: String { Self.source }

    /// The `extern "C"` name, as `input_type.cuh` builds it.
    public var kernelName: String { "\(Self.baseName)_\(input.rawValue)" }

    /// NVRTC options: the architecture, C++17 and the input type.
    public var compileOptions: [String] { input.helperOptions(arch: arch) }

    /// Zero: these kernels need no dynamic shared memory.
    public var sharedMemoryBytes: Int { 0 }

    /// Both input types for `arch`.
    public static func allVariants(arch: String) -> [Self] {
        KernelFloatType.allCases.map { Self(input: $0, arch: arch) }
    }
}

/// Several kernels of one source, each compiled per input element type, named by a stage:
/// `<namePrefix>_<stage>_<f16|bf16>`. A conforming descriptor gives its source, prefix, stage
/// enum and fields; it keeps the default options (the input type) or adds to them.
public protocol StagedInputKernel: KernelVariant {
    associatedtype Stage: RawRepresentable, CaseIterable, Hashable, Sendable where Stage.RawValue == String
    /// The embedded source file.
    static var source: String { get }
    /// The kernel names' common start, e.g. `intfa_kv`.
    static var namePrefix: String { get }
    var stage: Stage { get }
    /// The input's element type.
    var input: KernelFloatType { get }
    init(stage: Stage, input: KernelFloatType, arch: String)
}

extension StagedInputKernel {
    public var sourceFile: String { Self.source }

    /// The `extern "C"` name, as the source builds it with `input_type.cuh`.
    public var kernelName: String { "\(Self.namePrefix)_\(stage.rawValue)_\(input.rawValue)" }

    /// NVRTC options: the architecture, C++17 and the input type.
    public var inputTypeOptions: [String] { input.helperOptions(arch: arch) }

    /// ``inputTypeOptions``, unless the descriptor adds to them.
    public var compileOptions: [String] { inputTypeOptions }

    /// Zero: the kernels' shared memory is static.
    public var sharedMemoryBytes: Int { 0 }

    /// Every stage for both input types on `arch`.
    public static func everyStage(arch: String) -> [Self] {
        Stage.allCases.flatMap { stage in KernelFloatType.allCases.map { Self(stage: stage, input: $0, arch: arch) } }
    }
}
