import CUDADriver
import IntFlashAttention

/// A kernel family defined outside the library: `fp16` attention through `naive_attention.cu`
/// (one thread per query row). Everything a family is: what it runs, its variants, its launch.
struct NaiveFamily: AttentionFamily {
    static let name = AttentionKernelFamily(rawValue: "naive")
    static let headDims = [32, 64]

    var name: AttentionKernelFamily { Self.name }

    func validate(method: AttentionMethod, headDim: Int, arch: String) throws(AttentionError) {
        guard method == .fp16 else {
            throw .unsupportedMethod(method: method.rawValue, backend: "cuda", reason: "the naive family runs fp16 only")
        }
        guard Self.headDims.contains(headDim) else { throw .unsupportedHeadDim(headDim, supported: Self.headDims) }
        guard let version = Int(arch.dropFirst(3).prefix { $0.isNumber }), arch.hasPrefix("sm_"), version >= 80 else {
            throw .gpu("the naive family needs sm_80 or newer, not \(arch)")
        }
    }

    func headDims(for method: AttentionMethod) -> [Int] { method == .fp16 ? Self.headDims : [] }

    func allVariants(arch: String) -> [any KernelVariant] {
        guard runs(.fp16, headDim: 64, arch: arch) else { return [] }
        return Self.headDims.flatMap { headDim in
            [false, true].flatMap { causal in
                KernelFloatType.allCases.flatMap { output in
                    [false, true].map { lse in
                        NaiveKernelDescriptor(headDim: headDim, causal: causal, output: output, writesLogSumExp: lse, arch: arch)
                    }
                }
            }
        }
    }

    func launch(_ call: AttentionLaunch, on engine: CUDAAttention) throws(AttentionError) {
        let problem = call.problem
        let kernel = NaiveKernelDescriptor(
            headDim: problem.headDim, causal: problem.causal, output: call.output,
            writesLogSumExp: call.writesLogSumExp, arch: engine.architecture)
        try engine.launch(
            kernel, grid: LaunchDimensions((problem.queryLength + 127) / 128, min(problem.batch * problem.heads, 65535)),
            block: LaunchDimensions(128), params: call.params, on: call.stream)
    }
}

/// One compiled variant of `naive_attention.cu`.
struct NaiveKernelDescriptor: KernelVariant {
    var headDim: Int
    var causal: Bool
    var output: KernelFloatType
    var writesLogSumExp: Bool
    var arch: String

    var sourceFile: String { "naive_attention.cu" }
    var kernelName: String {
        "intfa_naive_fp16_d\(headDim)_\(causal ? "causal" : "full")_\(output.rawValue)" + (writesLogSumExp ? "_lse" : "")
    }
    var compileOptions: [String] {
        [
            "-arch=\(arch)", "-std=c++17", "-DINTFA_HEAD_DIM=\(headDim)", "-DINTFA_CAUSAL=\(causal ? 1 : 0)",
            "-DINTFA_OUT_BF16=\(output == .bfloat16 ? 1 : 0)", "-DINTFA_WRITE_LSE=\(writesLogSumExp ? 1 : 0)",
        ]
    }
    var sharedMemoryBytes: Int { 0 }

    /// This module's own source, with the library's headers.
    func compilationRequest() throws(AttentionError) -> CompilationRequest {
        guard let source = EmbeddedKernelSources.files[sourceFile] else {
            throw .gpu("kernel source \(sourceFile) is not embedded in the test module")
        }
        return compilationRequest(source: source)
    }
}
