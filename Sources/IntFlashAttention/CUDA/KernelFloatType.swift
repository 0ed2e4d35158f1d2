/// A 16-bit floating-point element type as the kernels read or write it: attention outputs,
/// the quantizers' and the merge's inputs, the Q that a Hopper kernel quantizes itself. Its raw
/// value is the fragment that kernel names spell (`f16`, `bf16`).
public enum KernelFloatType: String, Hashable, Sendable, CaseIterable {
    /// fp16.
    case float16 = "f16"
    /// bf16.
    case bfloat16 = "bf16"
}

extension KernelFloatType {
    /// The kernels' form of `type`; nil for fp32, which no kernel reads or writes.
    public init?(_ type: ElementType) {
        switch type {
        case .float16: self = .float16
        case .bfloat16: self = .bfloat16
        case .float32: return nil
        }
    }
}
