/// A paged INT8 key/value cache on the host: the scheme of docs/SCHEMES.md ("The INT8 KV
/// cache") and the CPU oracle of a GPU cache built to it.
///
/// Pages of `pageSize` tokens hold, for every KV head, the K and V codes of their tokens and
/// one fp32 scale per token for each. A sequence owns the pages its block table lists, in
/// order; ``append(sequence:keys:values:tokens:)`` quantizes new tokens into the free slots
/// of its last page and into fresh pages from the pool, never touching tokens already stored.
/// K is smoothed by a per-channel mean fixed by the sequence's first append (its prefill), so
/// no append needs statistics of tokens still to come.
public struct PagedKVCache: Sendable {
    /// The cache's shape.
    public struct Layout: Hashable, Sendable {
        /// Tokens per page.
        public var pageSize: Int
        /// Pages in the pool.
        public var pageCount: Int
        /// Key/value heads.
        public var kvHeads: Int
        /// Head dimension.
        public var headDim: Int

        /// Creates a layout; throws for sizes outside what the cache supports (page sizes 1…256,
        /// head dims that are multiples of 8 up to 256).
        public init(pageSize: Int, pageCount: Int, kvHeads: Int, headDim: Int) throws(AttentionError) {
            guard (1...256).contains(pageSize) else {
                throw .invalidDimension(name: "pageSize", value: pageSize, requirement: "must be between 1 and 256")
            }
            guard pageCount >= 1 else { throw .invalidDimension(name: "pageCount", value: pageCount, requirement: "must be at least 1") }
            guard kvHeads >= 1 else { throw .invalidDimension(name: "kvHeads", value: kvHeads, requirement: "must be at least 1") }
            guard headDim % 8 == 0, (8...256).contains(headDim) else {
                throw .invalidDimension(name: "headDim", value: headDim, requirement: "must be a multiple of 8 between 8 and 256")
            }
            self.pageSize = pageSize
            self.pageCount = pageCount
            self.kvHeads = kvHeads
            self.headDim = headDim
        }

        /// Bytes one token takes in the cache, over all KV heads: K and V codes and their two
        /// fp32 scales (an fp16 cache takes `4 · headDim` per head).
        public var bytesPerToken: Int { kvHeads * (2 * headDim + 8) }

        /// Elements of one page's codes for one head.
        var headCodes: Int { pageSize * headDim }
    }

    public let layout: Layout
    private var pool: PagePool
    /// Per sequence, the pages it owns, in token order.
    public var blockTables: [[Int]] { pool.blockTables }
    /// Per sequence, the tokens stored.
    public var lengths: [Int] { pool.lengths }
    /// Per sequence, K's channel means [kvHeads, headDim], fixed by its first append.
    public private(set) var keyMeans: [[Float]?]
    /// Page storage, page-major then head: codes [page, kvHead, slot, channel], scales
    /// [page, kvHead, slot] (``PagedKVCacheView`` lays out device memory the same way).
    public private(set) var keyCodes: [Int8]
    public private(set) var valueCodes: [Int8]
    public private(set) var keyScales: [Float]
    public private(set) var valueScales: [Float]

    /// An empty cache for `sequences` sequences.
    public init(layout: Layout, sequences: Int) throws(AttentionError) {
        guard sequences >= 1 else { throw .invalidDimension(name: "sequences", value: sequences, requirement: "must be at least 1") }
        let codes = CheckedSize.product(layout.pageCount, layout.kvHeads * layout.headCodes) ?? .max
        try HostMemory.reserve(CheckedSize.product(codes, 3) ?? .max, for: "a KV cache of \(layout.pageCount) pages")
        self.layout = layout
        pool = PagePool(pageCount: layout.pageCount, pageSize: layout.pageSize, sequences: sequences)
        keyMeans = Array(repeating: nil, count: sequences)
        keyCodes = [Int8](repeating: 0, count: codes)
        valueCodes = [Int8](repeating: 0, count: codes)
        let scales = layout.pageCount * layout.kvHeads * layout.pageSize
        keyScales = [Float](repeating: 0, count: scales)
        valueScales = [Float](repeating: 0, count: scales)
    }

    /// Pages not yet owned by a sequence.
    public var freePageCount: Int { pool.freeCount }

    /// Quantizes `tokens` new tokens of `sequence` into the cache: `keys` and `values` are
    /// [kvHeads, tokens, headDim] (fp32). The first append of a sequence (its prefill) fixes
    /// K's channel means over its own tokens and needs at least one. NaN and ±Inf are refused:
    /// a cached token is read by every later step.
    public mutating func append(sequence: Int, keys: [Float], values: [Float], tokens: Int) throws(AttentionError) {
        let d = layout.headDim, hkv = layout.kvHeads, size = layout.pageSize
        guard blockTables.indices.contains(sequence) else {
            throw .invalidDimension(name: "sequence", value: sequence, requirement: "must be in 0..<\(blockTables.count)")
        }
        guard tokens >= 0 else { throw .invalidDimension(name: "tokens", value: tokens, requirement: "must not be negative") }
        let expected = "[\(hkv), \(tokens), \(d)] (KV heads, tokens, head dim)"
        guard keys.count == hkv * tokens * d else { throw .shapeMismatch(tensor: "keys", expected: expected, actual: "\(keys.count) elements") }
        guard values.count == hkv * tokens * d else {
            throw .shapeMismatch(tensor: "values", expected: expected, actual: "\(values.count) elements")
        }
        if let bad = keys.firstIndex(where: { !$0.isFinite }) { throw .nonFiniteInput(tensor: "keys", index: bad) }
        if let bad = values.firstIndex(where: { !$0.isFinite }) { throw .nonFiniteInput(tensor: "values", index: bad) }
        if keyMeans[sequence] == nil && tokens == 0 {
            throw .invalidDimension(name: "tokens", value: 0, requirement: "the first append of a sequence (its prefill) fixes K's means and needs a token")
        }
        guard tokens > 0 else { return }
        let start = lengths[sequence]
        _ = try pool.reserve(tokens: tokens, sequences: sequence..<(sequence + 1))
        if keyMeans[sequence] == nil {
            keyMeans[sequence] = (0..<hkv).flatMap { h in
                KeySmoothing.channelMeans(Array(keys[(h * tokens * d)..<((h + 1) * tokens * d)]), tokens: tokens, channels: d)
            }
        }
        let means = keyMeans[sequence]!, table = blockTables[sequence]
        for h in 0..<hkv {
            for t in 0..<tokens {
                let position = start + t
                let (page, slot) = (table[position / size], position % size)
                let scaleIndex = (page * hkv + h) * size + slot
                let codeIndex = scaleIndex * d
                let source = (h * tokens + t) * d
                let smoothed = (0..<d).map { keys[source + $0] - means[h * d + $0] }
                keyScales[scaleIndex] = Self.quantize(smoothed, first: 0, count: d, into: &keyCodes, at: codeIndex)
                valueScales[scaleIndex] = Self.quantize(values, first: source, count: d, into: &valueCodes, at: codeIndex)
            }
        }
        pool.advance(tokens: tokens, sequences: sequence..<(sequence + 1))
    }

    /// Codes the token row `row[first..<first + count]` by the symmetric INT8 rule into
    /// `codes` from `index`; returns its scale.
    private static func quantize(_ row: [Float], first: Int, count: Int, into codes: inout [Int8], at index: Int) -> Float {
        row.withUnsafeBufferPointer { values in
            codes.withUnsafeMutableBufferPointer { out in
                SymmetricQuantization.quantizeGroup(
                    values.baseAddress! + first, count: count, levels: SymmetricQuantization.int8Levels, into: out.baseAddress! + index)
            }
        }
    }

    /// Token `position` of `sequence` at KV head `head`: where its codes and scales lie.
    func storageIndex(sequence: Int, head: Int, position: Int) -> Int {
        let page = blockTables[sequence][position / layout.pageSize]
        return (page * layout.kvHeads + head) * layout.pageSize + position % layout.pageSize
    }

    /// The stored keys and values of `sequence` decoded back to fp32 (K with its means added
    /// back), [kvHeads, length, headDim] each: what attention on the cache sees.
    public func dequantized(sequence: Int) throws(AttentionError) -> (keys: [Float], values: [Float]) {
        guard blockTables.indices.contains(sequence) else {
            throw .invalidDimension(name: "sequence", value: sequence, requirement: "must be in 0..<\(blockTables.count)")
        }
        let d = layout.headDim, n = lengths[sequence]
        var keys = [Float](repeating: 0, count: layout.kvHeads * n * d)
        var values = keys
        for h in 0..<layout.kvHeads {
            for t in 0..<n {
                let index = storageIndex(sequence: sequence, head: h, position: t)
                for c in 0..<d {
                    let mean = keyMeans[sequence]?[h * d + c] ?? 0
                    keys[(h * n + t) * d + c] = Float(keyCodes[index * d + c]) * keyScales[index] + mean
                    values[(h * n + t) * d + c] = Float(valueCodes[index * d + c]) * valueScales[index]
                }
            }
        }
        return (keys, values)
    }
}
