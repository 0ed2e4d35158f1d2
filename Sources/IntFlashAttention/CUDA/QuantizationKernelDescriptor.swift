/// One kernel of `Kernels/quantize.cu`, which turns fp16/bf16 Q, K, V into the codes and
/// scales of docs/SCHEMES.md. Which kernels a method runs, in which order, is
/// `CUDAAttention.prepareInputs` (`CUDAAttention+Quantization.swift`).
public struct QuantizationKernelDescriptor: Hashable, Sendable, CustomStringConvertible {
    /// Element type of the codes a kernel writes.
    public enum Code: String, Hashable, Sendable {
        /// Signed 8-bit integers.
        case int8 = "s8"
        /// FP8 E4M3.
        case e4m3 = "e4m3"
    }

    /// What a quantization kernel computes, with its launch shape.
    public enum Kind: Hashable, Sendable {
        /// Per (batch, head, chunk of ``statsChunkTokens`` tokens, channel): double sum and
        /// max |x|. Grid (ceil(D/32), chunks, B·Hx), block (32, 8).
        case channelPartials
        /// Per (batch, head, channel): mean over tokens and max |x|, from the chunks in
        /// order. Grid (ceil(D/32), B·Hx), block 32.
        case channelStats
        /// Q rows, and K rows of the methods without key groups: codes [B, Hx, N, D] and
        /// per-token scales [B, Hx, tokensPadded] (or one per tensor).
        /// Grid (ceil(tokensPadded/8), B·Hx), block 256.
        case rows(Code, perTensor: Bool)
        /// K of `int8`: codes [B, Hx, N, D] with one scale per group of 8 keys
        /// ([B, Hx, NPad / 8], ``KeyGroups``), smoothed. Grid (NPad/128, B·Hx), block 256.
        case keyGroups
        /// V → Vt [B, Hx, D, NPad], keys permuted per 32; scales per channel or per tensor.
        /// Grid (NPad/64, ceil(D/64), B·Hx), block 256.
        case transposedV(Code, perTensor: Bool)
        /// The fp16 method's screen: marks the rows holding offending elements (NaN, ±Inf,
        /// and from bf16 |x| ≥ 65520) and, from bf16, writes the fp16 copy with them zeroed.
        /// Grid (any x: CTAs loop over the rows, B·Hx), block 256.
        case screenRows
    }

    /// What the kernel computes.
    public var kind: Kind
    /// Element type of the input tensor (fp16 or bf16).
    public var input: KernelFloatType
    /// NVRTC architecture, e.g. `sm_90`.
    public var arch: String

    /// Creates a descriptor from its fields.
    public init(kind: Kind, input: KernelFloatType, arch: String) {
        self.kind = kind
        self.input = input
        self.arch = arch
    }

    /// The embedded source, `Kernels/quantize.cu`.
    public var sourceFile: String { "quantize.cu" }

    /// Tokens per chunk of the channel statistics: the one source of quantize.cu's
    /// `kStatsChunkTokens` (passed as `INTFA_STATS_CHUNK_TOKENS`).
    public static let statsChunkTokens = 256
    /// Tokens per CTA of the rows kernels (8 warps): the one source of quantize.cu's
    /// `kRowsPerWarp` (passed as `INTFA_ROWS_PER_CTA`).
    public static let rowsPerCTA = 64

    private var code: Code {
        switch kind {
        case let .rows(code, _), let .transposedV(code, _): return code
        default: return .int8
        }
    }

    private var perTensor: Bool {
        switch kind {
        case let .rows(_, perTensor), let .transposedV(_, perTensor): return perTensor
        default: return false
        }
    }

    /// The `extern "C"` name; `quantize.cu` builds the same string from its macros.
    public var kernelName: String {
        let suffix = input.rawValue
        switch kind {
        case .channelPartials: return "intfa_channel_partials_\(suffix)"
        case .channelStats: return "intfa_channel_stats_\(suffix)"
        case let .rows(code, perTensor):
            return "intfa_quantize_rows_\(code.rawValue)_\(perTensor ? "pertensor" : "pertoken")_\(suffix)"
        case .keyGroups: return "intfa_quantize_key_groups_s8_smooth_\(suffix)"
        case let .transposedV(code, perTensor):
            return "intfa_quantize_vt_\(code.rawValue)_\(perTensor ? "pertensor" : "perchannel")_\(suffix)"
        case .screenRows: return "intfa_screen_rows_\(suffix)"
        }
    }

    /// NVRTC options: the architecture, C++17, and the variant's `-D` macros.
    public var compileOptions: [String] {
        [
            "-arch=\(arch)", "-std=c++17",
            "-DINTFA_INPUT_BF16=\(input == .bfloat16 ? 1 : 0)", "-DINTFA_CODE_E4M3=\(code == .e4m3 ? 1 : 0)",
            "-DINTFA_PER_TENSOR=\(perTensor ? 1 : 0)",
            // The constants these kernels share with the host, from their one source here.
            "-DINTFA_STATS_CHUNK_TOKENS=\(Self.statsChunkTokens)", "-DINTFA_ROWS_PER_CTA=\(Self.rowsPerCTA)",
            "-DINTFA_KEY_TILE=\(KeyGroups.tileKeys)", "-DINTFA_KEY_GROUP=\(KeyGroups.groupKeys)",
            VtKeyOrder.compileOption,
        ]
    }

    /// Every quantization kernel for `arch` (e4m3 only on sm_89+).
    public static func allVariants(arch: String) -> [QuantizationKernelDescriptor] {
        let fp8 = (MMAKernelDescriptor.smVersion(arch) ?? 0) >= 89
        var result: [QuantizationKernelDescriptor] = []
        for input in KernelFloatType.allCases {
            result.append(.init(kind: .channelPartials, input: input, arch: arch))
            result.append(.init(kind: .channelStats, input: input, arch: arch))
            result.append(.init(kind: .screenRows, input: input, arch: arch))
            result.append(.init(kind: .keyGroups, input: input, arch: arch))
            for code in fp8 ? [Code.int8, .e4m3] : [.int8] {
                for perTensor in [false, true] {
                    result.append(.init(kind: .transposedV(code, perTensor: perTensor), input: input, arch: arch))
                    result.append(.init(kind: .rows(code, perTensor: perTensor), input: input, arch: arch))
                }
            }
        }
        return result
    }
}
