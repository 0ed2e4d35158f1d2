/// How attention is computed: the floating-point baselines and the quantized schemes of
/// `docs/SCHEMES.md`.
public enum AttentionMethod: String, CaseIterable, Sendable, Hashable, Codable, CustomStringConvertible {
    /// fp32 inputs and arithmetic (CPU only): the floating-point baseline of the CPU path.
    case fp32
    /// fp16-rounded inputs and P, fp32 arithmetic.
    case fp16
    /// Q, K, V and P in FP8 E4M3 with per-tensor scales: the paper's FP8 baseline.
    case fp8E4M3 = "fp8-e4m3"
    /// The same in FP8 E5M2.
    case fp8E5M2 = "fp8-e5m2"
    /// The paper's INT8 scheme: per-token Q and K, per-tensor V, P = round(127·P).
    case int8Paper = "int8-paper"
    /// The default INT8 scheme: K smoothing, per-channel V, u8 P with per-block row scales.
    case int8
    /// INT4 per-token Q and K (K smoothed), P·V as `int8`.
    case int4

    /// The raw value, e.g. `int8-paper`.
    public var description: String { rawValue }

    /// Keys per block of the `int8-paper`, FP8 and float paths: the granularity of their
    /// running maximum. The `int8` scheme's P blocks are 32, 96, then 128 keys (``KeyGroups``).
    public static let keyBlock = 64
}
