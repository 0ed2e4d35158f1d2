/// A Q, K, V or O tensor in GPU memory that the caller owns: a device address, an element
/// type and element strides of a logical [batch, heads, tokens, headDim] tensor whose head
/// dim is contiguous. BHND and BNHD are both just strides, so neither needs a copy.
public struct DeviceTensor: Sendable, Hashable {
    /// Device address of element (0, 0, 0, 0).
    public var address: UInt64
    /// fp16 or bf16.
    public var elementType: ElementType
    /// Element strides between batches, heads and tokens.
    public var strides: TensorStrides

    /// Creates a tensor from its fields.
    public init(address: UInt64, elementType: ElementType, strides: TensorStrides) {
        self.address = address
        self.elementType = elementType
        self.strides = strides
    }

    /// A contiguous tensor in `layout`.
    public init(address: UInt64, elementType: ElementType, layout: TensorLayout, heads: Int, tokens: Int, headDim: Int) {
        self.init(
            address: address, elementType: elementType,
            strides: layout.strides(heads: heads, tokens: tokens, headDim: headDim))
    }
}

/// Inputs already quantized in the GPU layout of docs/SCHEMES.md (for callers that keep INT8
/// K/V caches): contiguous codes and fp32 scales, `vt` transposed and key-permuted. The FP8
/// scheme uses the same form with e4m3 codes and one scale per (batch, head) tensor.
public struct QuantizedDeviceInputs: Sendable, Hashable {
    /// `.int8`, `.int8Paper` or `.fp8E4M3`: the block update and the scale shapes the kernel uses.
    public var method: AttentionMethod
    /// s8 [B, H, Nq, D].
    public var q: UInt64
    /// fp32 [B, H, Nq] (or [B, H] for FP8), already multiplied by softmaxScale·log2(e); then
    /// the query rows' marks of offending inputs (``markOffsets(method:problem:)``).
    public var qScale: UInt64
    /// s8 [B, Hkv, Nk, D].
    public var k: UInt64
    /// fp32 [B, Hkv, NkPad / 8], one per group of 8 keys (`int8`, ``KeyGroups``), or
    /// [B, Hkv, NkPad], one per key (`int8-paper`), or [B, Hkv] (FP8); zero past Nk; then the
    /// first offending key of each (batch, KV head) (``markOffsets(method:problem:)``).
    public var kScale: UInt64
    /// [B, Hkv, D, NkPad], keys permuted within each group of 32: `int8` codes in excess-128
    /// form (code + 128 as u8), `int8-paper` codes as s8.
    public var vt: UInt64
    /// fp32 [B, Hkv, D] (`int8`) or [B, Hkv] (`int8-paper`).
    public var vScale: UInt64

    /// The buffers that `params` points at.
    init(_ params: AttentionParams, method: AttentionMethod) {
        self.init(method: method, q: params.q, qScale: params.qScale, k: params.k, kScale: params.kScale, vt: params.v, vScale: params.vScale)
    }

    /// Creates the inputs from their device addresses.
    public init(method: AttentionMethod, q: UInt64, qScale: UInt64, k: UInt64, kScale: UInt64, vt: UInt64, vScale: UInt64) {
        self.method = method
        self.q = q
        self.qScale = qScale
        self.k = k
        self.kScale = kScale
        self.vt = vt
        self.vScale = vScale
    }

    /// Keys rounded up to the 128-key tile: the padded length of `vt` rows and `kScale`.
    public static func paddedKeyLength(_ keyLength: Int) -> Int { QuantizedAttentionInputs.paddedKeyLength(keyLength) }

    /// Bytes each buffer needs for `problem` under `method`. The two scale buffers end with
    /// the marks of offending inputs (``markOffsets(method:problem:)``).
    public static func byteCounts(
        method: AttentionMethod, problem: AttentionProblem
    ) -> (q: Int, qScale: Int, k: Int, kScale: Int, vt: Int, vScale: Int) {
        let b = problem.batch, h = problem.heads, hkv = problem.kvHeads, d = problem.headDim
        let nkPad = paddedKeyLength(problem.keyLength)
        let marks = markOffsets(method: method, problem: problem)
        return (
            q: b * h * problem.queryLength * d,
            qScale: marks.rowMarks + (b * h * problem.queryLength + 3) / 4 * 4,  // whole fp32 words
            k: b * hkv * problem.keyLength * d,
            kScale: marks.keyMarks + b * hkv * 4,
            vt: b * hkv * d * nkPad,
            vScale: method == .int8 ? b * hkv * d * 4 : b * hkv * 4)
    }

    /// Where the marks of offending inputs (NaN, ±Inf; docs/VALIDATION.md) start, right after
    /// the scales: in `qScale`, one byte per query row [B, H, Nq] (1 where the row holds one);
    /// in `kScale`, one s32 per (batch, KV head) [B, Hkv], the first key whose K or V row holds
    /// one (0x7FFFFFFF when none). The quantizers write them and the kernels read them.
    public static func markOffsets(method: AttentionMethod, problem: AttentionProblem) -> (rowMarks: Int, keyMarks: Int) {
        let b = problem.batch, h = problem.heads, hkv = problem.kvHeads
        let nkPad = paddedKeyLength(problem.keyLength)
        let perTensor = method == .fp8E4M3
        return (
            rowMarks: perTensor ? b * h * 4 : b * h * max(problem.queryLength, 1) * 4,
            keyMarks: perTensor ? b * hkv * 4 : b * hkv * (method == .int8 ? nkPad / KeyGroups.groupKeys : nkPad) * 4)
    }

    /// The marks' device addresses in these buffers.
    func markAddresses(problem: AttentionProblem) -> (rowMarks: UInt64, keyMarks: UInt64) {
        let offsets = Self.markOffsets(method: method, problem: problem)
        return (qScale + UInt64(offsets.rowMarks), kScale + UInt64(offsets.keyMarks))
    }
}
