/// The shape and options of one attention call, shared by the CPU path, the CUDA path
/// and the tests.
///
/// Q has `heads` heads; K and V have `kvHeads` heads, and query head `h` reads key/value
/// head `h / (heads / kvHeads)` (grouped-query and multi-query attention).
///
/// Causal masking is aligned to the bottom-right corner, as FlashAttention 2.1+ does: query
/// row `i` sees key `j` when `j <= i + keyLength - queryLength`. When `queryLength > keyLength`
/// the first rows see no key at all; their output is zero (and their log-sum-exp −∞).
///
/// A problem with `batch == 0` or `queryLength == 0` is valid and empty: every entry point
/// returns an empty output without running anything. Every other extent must be at least 1.
public struct AttentionProblem: Hashable, Sendable, CustomStringConvertible {
    /// Batch size (B).
    public var batch: Int
    /// Query heads (H).
    public var heads: Int
    /// Key/value heads (Hkv); divides `heads`.
    public var kvHeads: Int
    /// Tokens in the query sequence (Nq).
    public var queryLength: Int
    /// Tokens in the key/value sequence (Nk).
    public var keyLength: Int
    /// Channels per head (D).
    public var headDim: Int
    /// Multiplies Q·Kᵀ before the softmax.
    public var softmaxScale: Float
    /// Whether the bottom-right-aligned causal mask applies.
    public var causal: Bool

    /// Creates and validates a problem. `softmaxScale` defaults to 1/√headDim and
    /// `kvHeads` to `heads`.
    public init(
        batch: Int = 1,
        heads: Int,
        kvHeads: Int? = nil,
        queryLength: Int,
        keyLength: Int,
        headDim: Int,
        softmaxScale: Float? = nil,
        causal: Bool = false
    ) throws(AttentionError) {
        self.batch = batch
        self.heads = heads
        self.kvHeads = kvHeads ?? heads
        self.queryLength = queryLength
        self.keyLength = keyLength
        self.headDim = headDim
        self.softmaxScale = softmaxScale ?? (headDim > 0 ? 1 / Float(headDim).squareRoot() : 1)
        self.causal = causal
        try validate()
    }

    /// Largest head dimension any backend accepts.
    public static let maxHeadDim = 256

    /// Most elements one tensor may have: every byte count derived from them (8-byte values,
    /// head dims padded to 16, keys to 64) then fits in 64 bits, so no size computed later
    /// can overflow.
    public static let maxTensorElements = 1 << 56

    /// Throws the first problem found with the shape or options.
    public func validate() throws(AttentionError) {
        if batch < 0 { throw .invalidDimension(name: "batch", value: batch, requirement: "must not be negative") }
        if heads < 1 { throw .invalidDimension(name: "heads", value: heads, requirement: "must be at least 1") }
        if kvHeads < 1 { throw .invalidDimension(name: "kvHeads", value: kvHeads, requirement: "must be at least 1") }
        if heads % kvHeads != 0 { throw .headsNotDivisible(heads: heads, kvHeads: kvHeads) }
        if queryLength < 0 {
            throw .invalidDimension(name: "queryLength", value: queryLength, requirement: "must not be negative")
        }
        if keyLength < 1 { throw .invalidDimension(name: "keyLength", value: keyLength, requirement: "must be at least 1") }
        if headDim < 1 || headDim > Self.maxHeadDim || headDim % 8 != 0 {
            throw .invalidDimension(
                name: "headDim", value: headDim,
                requirement: "must be a multiple of 8 between 8 and \(Self.maxHeadDim)")
        }
        if !(softmaxScale.isFinite && softmaxScale > 0) { throw .invalidSoftmaxScale(softmaxScale) }
        for (name, heads, tokens) in [("q", heads, queryLength), ("k", kvHeads, keyLength)] {
            let shape = "[\(batch), \(heads), \(tokens), \(headDim)]"
            guard let count = CheckedSize.product(batch, heads, tokens, headDim), count <= Self.maxTensorElements else {
                throw .tooLarge(what: "\(name) of shape \(shape)", limit: "at most 2^56 elements per tensor")
            }
        }
    }

    /// Whether there is nothing to compute: no batch entries or no query rows.
    public var isEmpty: Bool { batch == 0 || queryLength == 0 }

    /// Query heads that share one key/value head.
    public var groupSize: Int { heads / kvHeads }

    /// Key/value head read by query head `h`.
    @inlinable
    public func kvHead(forQueryHead h: Int) -> Int { h / (heads / kvHeads) }

    /// Number of keys query row `row` may attend (all of them unless causal); may be 0.
    @inlinable
    public func visibleKeys(row: Int) -> Int {
        guard causal else { return keyLength }
        return max(0, min(keyLength, row + keyLength - queryLength + 1))
    }

    /// Elements of Q and O.
    public var queryElementCount: Int { batch * heads * queryLength * headDim }
    /// Elements of K and of V.
    public var keyElementCount: Int { batch * kvHeads * keyLength * headDim }

    /// Multiply-adds counted as operations: 4·B·H·Nq·Nk·D, halved when causal (the
    /// convention of FlashAttention's benchmarks).
    public var operationCount: Double {
        let full = 4 * Double(batch) * Double(heads) * Double(queryLength) * Double(keyLength) * Double(headDim)
        return causal ? full / 2 : full
    }

    /// `B=1 H=16 [Hkv=4] Nq=… Nk=… D=128 [causal]`, for logs.
    public var description: String {
        var text = "B=\(batch) H=\(heads)"
        if kvHeads != heads { text += " Hkv=\(kvHeads)" }
        text += " Nq=\(queryLength) Nk=\(keyLength) D=\(headDim)"
        if causal { text += " causal" }
        return text
    }
}
