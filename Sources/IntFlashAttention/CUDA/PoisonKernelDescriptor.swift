/// The kernel of `Kernels/poison_rows.cu`: after an attention kernel, writes NaN into the
/// output rows and log-sum-exps that an offending input (NaN, ±Inf) reaches, as the marks
/// of the quantizers or the fp16 screen record (docs/VALIDATION.md).
public struct PoisonKernelDescriptor: KernelVariant {
    /// Whether row i sees only keys j ≤ i + Nk − Nq.
    public var causal: Bool
    /// NVRTC architecture, e.g. `sm_90`.
    public var arch: String

    /// Creates a descriptor from its fields.
    public init(causal: Bool, arch: String) {
        self.causal = causal
        self.arch = arch
    }

    /// The embedded source, `Kernels/poison_rows.cu`.
    public var sourceFile: String { "poison_rows.cu" }

    /// The `extern "C"` name; `poison_rows.cu` spells the same.
    public var kernelName: String { "intfa_poison_rows_\(causal ? "causal" : "full")" }

    /// NVRTC options: the architecture, C++17 and the mask.
    public var compileOptions: [String] { ["-arch=\(arch)", "-std=c++17", "-DINTFA_CAUSAL=\(causal ? 1 : 0)"] }

    /// Zero: the kernel needs no dynamic shared memory.
    public var sharedMemoryBytes: Int { 0 }

    /// Query rows per CTA: one thread each.
    public static let rowsPerBlock = 256

    /// Both masks for `arch`.
    public static func allVariants(arch: String) -> [PoisonKernelDescriptor] {
        [false, true].map { PoisonKernelDescriptor(causal: $0, arch: arch) }
    }
}
