/// Swift mirrors of the kernels' parameter blocks (`Kernels/params.cuh`), passed by value as
/// each kernel's single argument.
///
/// Every field is 8 bytes wide (pointers as `UInt64`, sizes and strides as `Int64`, fp32
/// values in pairs), so Swift's layout equals the C layout with no padding; the tests in
/// `KernelParamsLayoutTests` check each offset against the comments of `params.cuh`.
/// Strides count elements of the tensor they describe.
public struct AttentionParams: Sendable, Equatable, BitwiseCopyable {
    /// Q: 8-bit codes or fp16 values, logical [B, H, Nq, D].
    public var q: UInt64 = 0
    /// K: codes or fp16 values, logical [B, Hkv, Nk, D].
    public var k: UInt64 = 0
    /// V: `Vt` codes [B, Hkv, D, NkPad] (keys permuted, docs/SCHEMES.md) or fp16 V [B, Hkv, Nk, D].
    public var v: UInt64 = 0
    /// sQ [B, H, Nq] (per token, times sm·L) or [B, H]; 0 for fp16.
    public var qScale: UInt64 = 0
    /// sK [B, Hkv, NkPad] (per token, zero past Nk) or [B, Hkv]; 0 for fp16.
    public var kScale: UInt64 = 0
    /// sV [B, Hkv, D] (per channel) or [B, Hkv]; 0 for fp16.
    public var vScale: UInt64 = 0
    /// O: fp16 or bf16, logical [B, H, Nq, D].
    public var out: UInt64 = 0
    /// Log-sum-exp, fp32 [B, H, Nq], natural log (kernels built with `writesLogSumExp`).
    public var lse: UInt64 = 0
    /// Batch size (B).
    public var batch: Int64 = 0
    /// Query heads (H).
    public var heads: Int64 = 0
    /// Key/value heads (Hkv).
    public var kvHeads: Int64 = 0
    /// Tokens in the query sequence (Nq).
    public var queryLength: Int64 = 0
    /// Tokens in the key/value sequence (Nk).
    public var keyLength: Int64 = 0
    /// `keyLength` rounded up to a multiple of 64.
    public var keyLengthPadded: Int64 = 0
    /// Element stride of Q between batches.
    public var qStrideBatch: Int64 = 0
    /// Element stride of Q between heads.
    public var qStrideHead: Int64 = 0
    /// Element stride of Q between tokens.
    public var qStrideToken: Int64 = 0
    /// Element stride of K between batches.
    public var kStrideBatch: Int64 = 0
    /// Element stride of K between heads.
    public var kStrideHead: Int64 = 0
    /// Element stride of K between tokens.
    public var kStrideToken: Int64 = 0
    /// Element stride of V (or Vt) between batches.
    public var vStrideBatch: Int64 = 0
    /// Element stride of V (or Vt) between heads.
    public var vStrideHead: Int64 = 0
    /// Between Vt channel rows (NkPad) for 8-bit methods; between tokens for fp16 V.
    public var vStrideRow: Int64 = 0
    /// Element stride of O between batches.
    public var oStrideBatch: Int64 = 0
    /// Element stride of O between heads.
    public var oStrideHead: Int64 = 0
    /// Element stride of O between tokens.
    public var oStrideToken: Int64 = 0
    /// Softmax scale times log2(e), an fp32 product (fp16 method; 8-bit Q scales carry it).
    public var softmaxScaleLog2: Float = 0
    /// Pads `softmaxScaleLog2` to 8 bytes; unused.
    public var reserved0: Float = 0
    /// u8 [B, H, Nq]: 1 where the query row holds an offending input (NaN, ±Inf).
    public var rowMarks: UInt64 = 0
    /// s32 [B, Hkv]: the first key whose K or V row holds an offending input, 0x7FFFFFFF when none.
    public var keyMarks: UInt64 = 0
    /// Head dimension (D), read by the kernels that take it at run time (the row poisoning).
    public var headDim: Int64 = 0

    /// A block with every field zero.
    public init() {}

    /// Size of the C struct in bytes.
    public static let cSize = 240
}

/// Parameter block of every quantization kernel (`QuantizationParams` in `params.cuh`).
public struct QuantizationParams: Sendable, Equatable, BitwiseCopyable {
    /// fp16 / bf16 input, logical [B, Hx, N, D] with the strides below.
    public var input: UInt64 = 0
    /// Output codes: rows [B, Hx, N, D], Vt [B, Hx, D, NPad], or fp16 [B, Hx, N, D].
    public var codes: UInt64 = 0
    /// fp32 scales: [B, Hx, tokensPadded] per token, [B, Hx, D] per channel, [B, Hx] per tensor.
    public var scales: UInt64 = 0
    /// fp32 [B, Hx, D] channel means (written by the stats kernel, read for K smoothing).
    public var channelMean: UInt64 = 0
    /// fp32 [B, Hx, D] channel max |x| (written by the stats kernel).
    public var channelAmax: UInt64 = 0
    /// Batch size (B).
    public var batch: Int64 = 0
    /// Heads of the tensor (Hx: H for Q, Hkv for K and V).
    public var heads: Int64 = 0
    /// Tokens of the tensor (N).
    public var tokens: Int64 = 0
    /// Head dimension (D).
    public var headDim: Int64 = 0
    /// Rows of the per-token scale array: NkPad for K (so it can be copied in 16-byte
    /// pieces), N for Q; the Vt row length for V.
    public var tokensPadded: Int64 = 0
    /// Element stride of the input between batches.
    public var strideBatch: Int64 = 0
    /// Element stride of the input between heads.
    public var strideHead: Int64 = 0
    /// Element stride of the input between tokens.
    public var strideToken: Int64 = 0
    /// Multiplies each stored scale: sm·L for Q, 1 otherwise.
    public var scaleMultiplier: Float = 1
    /// Pads `scaleMultiplier` to 8 bytes; unused.
    public var reserved0: Float = 0
    /// Per-chunk channel statistics: fp64 sums [B, Hx, chunks, D], then fp32 max |x|
    /// [B, Hx, chunks, D] (``statsChunks`` chunks of ``QuantizationKernelDescriptor/statsChunkTokens``).
    public var channelPartials: UInt64 = 0
    /// Chunks of channel statistics per (batch, head) in `channelPartials`.
    public var statsChunks: Int64 = 0
    /// u8 [B, Hx, N] marks of tokens holding an offending input (written for every token), or 0.
    public var rowMarks: UInt64 = 0
    /// s32 [B, Hx]: lowered to the first token holding an offending input, or 0.
    public var keyMarks: UInt64 = 0

    /// A block with every field zero but `scaleMultiplier` (1).
    public init() {}

    /// Size of the C struct in bytes.
    public static let cSize = 144
}

/// Parameter block of the merge kernel (`MergeParams` in `params.cuh`).
public struct MergeParams: Sendable, Equatable, BitwiseCopyable {
    /// fp32 accumulator [B, H, N, D].
    public var out: UInt64 = 0
    /// fp32 log-sum-exp of the accumulator [B, H, N], token stride 1.
    public var lse: UInt64 = 0
    /// fp16 / bf16 part [B, H, N, D].
    public var part: UInt64 = 0
    /// fp32 log-sum-exp of the part [B, H, N], token stride 1.
    public var partLse: UInt64 = 0
    /// Batch size (B).
    public var batch: Int64 = 0
    /// Heads (H).
    public var heads: Int64 = 0
    /// Rows per head (N).
    public var tokens: Int64 = 0
    /// Head dimension (D).
    public var headDim: Int64 = 0
    /// Element strides of the accumulator.
    public var oStrideBatch: Int64 = 0, oStrideHead: Int64 = 0, oStrideToken: Int64 = 0
    /// Element strides of the part.
    public var pStrideBatch: Int64 = 0, pStrideHead: Int64 = 0, pStrideToken: Int64 = 0
    /// Element strides of the accumulator's log-sum-exp.
    public var lseStrideBatch: Int64 = 0, lseStrideHead: Int64 = 0
    /// Element strides of the part's log-sum-exp.
    public var partLseStrideBatch: Int64 = 0, partLseStrideHead: Int64 = 0
    /// Threads per row (D / 4).
    public var threadsPerRow: Int64 = 0
    /// Whole rows per CTA.
    public var rowsPerBlock: Int64 = 0

    /// A block with every field zero.
    public init() {}

    /// Size of the C struct in bytes.
    public static let cSize = 160
}

/// Parameter block of the kernel that restores the `int8` method's exact log-sum-exp
/// (`RestoreLogSumExpParams` in `params.cuh`, `restore_lse.cu`).
public struct RestoreLogSumExpParams: Sendable, Equatable, BitwiseCopyable {
    /// fp16 / bf16 Q, logical [B, H, Nq, D].
    public var query: UInt64 = 0
    /// fp32 K channel mean [B, Hkv, D].
    public var keyMean: UInt64 = 0
    /// fp32 log-sum-exp [B, H, Nq], updated in place.
    public var lse: UInt64 = 0
    /// Batch size (B).
    public var batch: Int64 = 0
    /// Query heads (H).
    public var heads: Int64 = 0
    /// Key/value heads (Hkv).
    public var kvHeads: Int64 = 0
    /// Query rows per head (Nq).
    public var queryLength: Int64 = 0
    /// Head dimension (D).
    public var headDim: Int64 = 0
    /// Element strides of Q.
    public var qStrideBatch: Int64 = 0, qStrideHead: Int64 = 0, qStrideToken: Int64 = 0
    /// The softmax scale.
    public var softmaxScale: Float = 0
    public var reserved0: Float = 0

    /// A block with every field zero.
    public init() {}

    /// Size of the C struct in bytes.
    public static let cSize = 96
}

/// Parameter block of the decode kernels (`DecodeParams` in `params.cuh`,
/// `Families/Decode/decode.cu`).
public struct DecodeParams: Sendable, Equatable, BitwiseCopyable {
    /// fp16 / bf16 Q, logical [B, Nq, H, D].
    public var query: UInt64 = 0
    /// The cache's s8 codes [pages, Hkv, pageSize, D] and fp32 scales [pages, Hkv, pageSize].
    public var keyCodes: UInt64 = 0, valueCodes: UInt64 = 0, keyScales: UInt64 = 0, valueScales: UInt64 = 0
    /// s32 [B, maxPages] block table and s32 [B] sequence lengths.
    public var blockTable: UInt64 = 0, lengths: UInt64 = 0
    /// fp32 partials of the splits: [splits, B, H, Nq, D] and [splits, B, H, Nq].
    public var partialOut: UInt64 = 0, partialLse: UInt64 = 0
    /// fp16 / bf16 output [B, Nq, H, D] and fp32 log-sum-exp [B, H, Nq] (0: none).
    public var out: UInt64 = 0, lse: UInt64 = 0
    public var batch: Int64 = 0, heads: Int64 = 0, kvHeads: Int64 = 0, queryLength: Int64 = 0, headDim: Int64 = 0
    public var pageSize: Int64 = 0, maxPages: Int64 = 0
    /// Splits of the keys and keys per split (a multiple of the decode P block).
    public var splits: Int64 = 0, splitKeys: Int64 = 0
    /// Element strides of Q and of the output.
    public var qStrideBatch: Int64 = 0, qStrideToken: Int64 = 0, qStrideHead: Int64 = 0
    public var oStrideBatch: Int64 = 0, oStrideToken: Int64 = 0, oStrideHead: Int64 = 0
    /// 1: the new tokens see each other causally.
    public var causal: Int64 = 0
    /// sm·L.
    public var softmaxScaleLog2: Float = 0
    public var reserved0: Float = 0
    /// Pages in the pool: block-table entries outside 0..<pageCount are not read.
    public var pageCount: Int64 = 0
    /// New tokens per CTA: the grid's x is splits × ⌈Nq / tokensPerTile⌉.
    public var tokensPerTile: Int64 = 0

    /// A block with every field zero.
    public init() {}

    /// Size of the C struct in bytes.
    public static let cSize = 240
}

/// Parameter block of the cache append kernels (`KVAppendParams` in `params.cuh`,
/// `Families/Decode/kv_append.cu`).
public struct KVAppendParams: Sendable, Equatable, BitwiseCopyable {
    /// fp16 / bf16 new keys and values, logical [B, T, Hkv, D].
    public var keys: UInt64 = 0, values: UInt64 = 0
    /// The cache's codes and scales, as in ``DecodeParams``, and K's fp32 channel means [B, Hkv, D].
    public var keyCodes: UInt64 = 0, valueCodes: UInt64 = 0, keyScales: UInt64 = 0, valueScales: UInt64 = 0, keyMeans: UInt64 = 0
    /// s32 [B, maxPages] block table and s32 [B] sequence lengths (before the append).
    public var blockTable: UInt64 = 0, lengths: UInt64 = 0
    /// Sequences, new tokens per sequence, and the cache's shape.
    public var batch: Int64 = 0, tokens: Int64 = 0, kvHeads: Int64 = 0, headDim: Int64 = 0
    public var pageSize: Int64 = 0, pageCount: Int64 = 0, maxPages: Int64 = 0
    /// Element strides of the new keys and values.
    public var kStrideBatch: Int64 = 0, kStrideToken: Int64 = 0, kStrideHead: Int64 = 0
    public var vStrideBatch: Int64 = 0, vStrideToken: Int64 = 0, vStrideHead: Int64 = 0

    /// A block with every field zero.
    public init() {}

    /// Size of the C struct in bytes.
    public static let cSize = 176
}


/// Parameter block of the padding kernels of packed variable-length batches
/// (`VariableLengthParams` in `params.cuh`, `Kernels/varlen_pad.cu`); the group's sequence
/// offsets follow it as a second parameter.
public struct VariableLengthParams: Sendable, Equatable, BitwiseCopyable {
    /// The pack: fp16 / bf16 Q [total, H, D], K and V [total, Hkv, D], and the output like Q.
    public var query: UInt64 = 0, key: UInt64 = 0, value: UInt64 = 0, out: UInt64 = 0
    /// The padded batch, contiguous [G, L, H or Hkv, D]: inputs and output.
    public var paddedQuery: UInt64 = 0, paddedKey: UInt64 = 0, paddedValue: UInt64 = 0, paddedOut: UInt64 = 0
    /// fp32 [G, Hkv, D]: K's channel mean and V's channel max |v| over each sequence's tokens
    /// (a zero `keyMean` pads K with zeros).
    public var keyMean: UInt64 = 0, valueAmax: UInt64 = 0
    /// Sequences in the group (G) and the padded length (L).
    public var sequences: Int64 = 0, paddedLength: Int64 = 0
    /// Heads of Q (H) and of K and V (Hkv), and the head dim (D).
    public var heads: Int64 = 0, kvHeads: Int64 = 0, headDim: Int64 = 0
    /// Element strides of the pack's tensors (token, head).
    public var qStrideToken: Int64 = 0, qStrideHead: Int64 = 0
    public var kStrideToken: Int64 = 0, kStrideHead: Int64 = 0
    public var vStrideToken: Int64 = 0, vStrideHead: Int64 = 0
    public var oStrideToken: Int64 = 0, oStrideHead: Int64 = 0

    /// A block with every field zero.
    public init() {}

    /// Size of the C struct in bytes.
    public static let cSize = 184
}
