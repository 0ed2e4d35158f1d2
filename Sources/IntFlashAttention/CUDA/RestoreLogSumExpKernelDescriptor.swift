/// The kernel of `Kernels/restore_lse.cu`: adds softmaxScale · (q · mean(K)) back to the
/// `int8` method's log-sum-exp, which its K smoothing shifted, so that it is the exact one.
public struct RestoreLogSumExpKernelDescriptor: InputTypedKernel {
    public static let source = "restore_lse.cu"
    public static let baseName = "intfa_restore_lse"
    /// Element type of Q.
    public var input: KernelFloatType
    /// NVRTC architecture, e.g. `sm_90`.
    public var arch: String

    /// Creates a descriptor from its fields.
    public init(input: KernelFloatType, arch: String) {
        self.input = input
        self.arch = arch
    }

    /// Query rows per CTA: one warp each.
    public static let rowsPerBlock = 8
}
