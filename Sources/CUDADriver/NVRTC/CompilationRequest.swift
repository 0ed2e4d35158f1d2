/// Everything that determines a compiled kernel: the kernel cache keys on all of it.
public struct CompilationRequest: Sendable, Hashable {
    /// The CUDA C++ source.
    public var source: String
    /// The program's file name, used in compiler messages (`name(line): error ...`).
    public var name: String
    /// Headers served from memory for `#include "name"`: name → contents. Kernels must
    /// include nothing else, so compiling needs no CUDA headers on disk.
    public var headers: [String: String]
    /// Extra NVRTC options, e.g. `-DHEAD_DIM=128`, `--use_fast_math`, `-lineinfo`.
    public var options: [String]
    /// The target, e.g. `sm_80`, `sm_90`, `sm_90a`; NVRTC emits SASS (a cubin) for it.
    public var architecture: String
    /// C++ names (e.g. `attention<128, true>`) whose mangled names to report, for
    /// templated kernels.
    public var nameExpressions: [String]

    /// Creates a request; only the source and the architecture are required.
    public init(
        source: String, name: String = "kernel.cu", headers: [String: String] = [:],
        options: [String] = [], architecture: String, nameExpressions: [String] = []
    ) {
        self.source = source
        self.name = name
        self.headers = headers
        self.options = options
        self.architecture = architecture
        self.nameExpressions = nameExpressions
    }

    /// Whether `architecture` names a real GPU (`sm_` + digits, optional `a`/`f` suffix):
    /// a virtual `compute_XX` target would produce PTX, not the cubin asked for.
    var hasValidArchitecture: Bool {
        guard let digits = architecture.dropPrefix("sm_") else { return false }
        let number = digits.last.map { "af".contains($0) } == true ? String(digits.dropLast()) : digits
        return !number.isEmpty && number.allSatisfy(\.isASCII) && Int(number) != nil
    }
}

/// The result of compiling a ``CompilationRequest``: SASS for one architecture plus what
/// the compiler said about it. Loading it needs a context; producing it does not.
public struct CompiledKernel: Sendable, Equatable, Codable {
    /// The ELF cubin, ready for ``CUDAModule/init(context:image:)``.
    public var cubin: [UInt8]
    /// The whole NVRTC log (warnings and the ptxas report).
    public var log: String
    /// ptxas's per-function registers, shared memory and spills.
    public var report: PtxasReport
    /// The architecture compiled for.
    public var architecture: String
    /// Name expression → mangled symbol, for ``CompilationRequest/nameExpressions``.
    public var loweredNames: [String: String]

    /// Creates a compiled kernel from its fields.
    public init(cubin: [UInt8], log: String, report: PtxasReport, architecture: String, loweredNames: [String: String] = [:]) {
        self.cubin = cubin
        self.log = log
        self.report = report
        self.architecture = architecture
        self.loweredNames = loweredNames
    }

    /// Loads the cubin into `context`.
    public func load(into context: CUDAContext) throws(CUDAError) -> CUDAModule {
        try CUDAModule(context: context, image: cubin)
    }
}
