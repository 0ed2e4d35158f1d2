@testable import IntFlashAttention

/// One random CPU attention call of the property tests, a pure function of (seed, method,
/// index): B, H, Hkv, Nq, Nk at their edges (0, 1, odd, unequal, around the 64-key blocks and
/// the 48-row work items), every head dim class, causal or not, BHND or BNHD, fp32 or fp16
/// storage, one or two threads, and in one case in eight a NaN, ±Inf or (for `fp16`) an
/// out-of-range value planted in Q, K or V.
struct PropertyCase: CustomStringConvertible {
    var method: AttentionMethod
    var index: Int
    var problem: AttentionProblem
    var layout: TensorLayout
    var storage: ElementType
    var threads: Int
    /// (tensor: 0 = Q, 1 = K, 2 = V; element in BHND order; value).
    var planted: [(tensor: Int, element: Int, value: Float)] = []
    var valueSeed: UInt64

    static let specialLengths = [1, 2, 3, 7, 47, 48, 49, 63, 64, 65, 127, 128, 129]

    init(method: AttentionMethod, index: Int, seed: UInt64) throws {
        self.method = method
        self.index = index
        var g = SplitMix64(seed: seed ^ (UInt64(index) &* 0x9E37_79B9_7F4A_7C15) ^ (Self.key(method) &* 0xD1B5_4A32_D192_ED03))
        func pick<T>(_ values: [T]) -> T { values[Int(g.next() % UInt64(values.count))] }
        func length(upTo limit: Int) -> Int {
            g.next() % 4 == 0 ? pick(Self.specialLengths) : 1 + Int(g.next() % UInt64(limit))
        }
        let batch = g.next() % 40 == 0 ? 0 : pick([1, 1, 2, 3])
        let heads = pick([1, 1, 2, 3, 4])
        let kvHeads = pick((1...heads).filter { heads % $0 == 0 })
        var queryLength = g.next() % 30 == 0 ? 0 : length(upTo: 70)
        var keyLength = length(upTo: 140)
        let headDim = pick([8, 16, 24, 40, 64])
        // Small enough for a debug build: at most 2^11 scores per call.
        while max(batch, 1) * heads * queryLength * keyLength > 1 << 11 {
            if queryLength > keyLength { queryLength = (queryLength + 1) / 2 } else { keyLength = (keyLength + 1) / 2 }
        }
        let causal = g.next() % 2 == 0
        let scale: Float? = g.next() % 4 == 0 ? Float(g.nextUnitFloat() * 2 + 0.01) : nil
        problem = try AttentionProblem(
            batch: batch, heads: heads, kvHeads: kvHeads, queryLength: queryLength, keyLength: keyLength,
            headDim: headDim, softmaxScale: scale, causal: causal)
        layout = pick([.bhnd, .bnhd])
        storage = pick([.float32, .float32, .float16])
        threads = pick([1, 2])
        valueSeed = g.next()
        if g.next() % 8 == 0 {
            let counts = [problem.queryElementCount, problem.keyElementCount, problem.keyElementCount]
            var values: [Float] = [.nan, .infinity, -.infinity]
            // Beyond fp16's range: offending for fp16 (fp32 storage only; fp16 storage would
            // already have rounded it to ±Inf).
            if method == .fp16 && storage == .float32 { values += [1e5, -7e4] }
            for _ in 0..<(1 + Int(g.next() % 2)) {
                let tensor = Int(g.next() % 3)
                guard counts[tensor] > 0 else { continue }
                planted.append((tensor, Int(g.next() % UInt64(counts[tensor])), pick(values)))
            }
        }
    }

    /// FNV-1a of the method's name: stable across runs (Swift's `hashValue` is not).
    static func key(_ method: AttentionMethod) -> UInt64 {
        method.rawValue.utf8.reduce(0xCBF2_9CE4_8422_2325 as UInt64) { ($0 ^ UInt64($1)) &* 0x100_0000_01B3 }
    }

    var description: String {
        var text = "\(method) case \(index): \(problem) \(layout.rawValue) \(storage.rawValue) threads \(threads)"
        if !planted.isEmpty { text += " planted \(planted.map { "\($0.value) in \(["q", "k", "v"][$0.tensor])[\($0.element)]" })" }
        return text
    }

    /// Q, K, V in BHND order as the call sees them: uniform draws of unit variance (in
    /// [−√3, √3)) with the planted values, rounded to the storage type. A plain loop over the
    /// buffers: a debug build spends more on closures than on the attention itself.
    func inputs() -> (q: [Float], k: [Float], v: [Float]) {
        var state = valueSeed | 1
        func draw(_ count: Int) -> [Float] {
            [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
                for i in 0..<count {
                    state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                    let unit = Float(UInt32(truncatingIfNeeded: state >> 40)) * (1.0 / 16_777_216.0)
                    buffer[i] = (unit * 2 - 1) * 1.7320508
                }
                initialized = count
            }
        }
        var tensors = [draw(problem.queryElementCount), draw(problem.keyElementCount), draw(problem.keyElementCount)]
        for plant in planted { tensors[plant.tensor][plant.element] = plant.value }
        if storage == .float16 { tensors = tensors.map { $0.map { Float(Float16($0)) } } }
        return (tensors[0], tensors[1], tensors[2])
    }

    /// `values` (BHND) as a tensor in this case's layout and storage.
    func tensor(_ values: [Float], heads: Int, tokens: Int) throws -> AttentionTensor {
        let p = problem
        let ordered = TensorLayout.bhnd.reorder(values, to: layout, batch: p.batch, heads: heads, tokens: tokens, headDim: p.headDim)
        return try AttentionTensor(
            converting: ordered, to: storage, batch: p.batch, heads: heads, tokens: tokens, headDim: p.headDim, layout: layout)
    }
}

/// The non-finite contract of docs/VALIDATION.md, written out directly: which output rows of a
/// call must be NaN.
enum ContractOracle {
    /// Whether element `x` offends under `method`.
    static func offends(_ x: Float, _ method: AttentionMethod) -> Bool {
        method == .fp16 ? !(abs(x) < 65520) : !x.isFinite
    }

    /// For every BHND output row: whether the contract makes it NaN.
    static func nanRows(_ p: AttentionProblem, _ method: AttentionMethod, q: [Float], k: [Float], v: [Float]) -> [Bool] {
        let d = p.headDim
        func offendingRows(_ x: [Float]) -> [Bool] {
            stride(from: 0, to: x.count, by: d).map { start in x[start..<(start + d)].contains { offends($0, method) } }
        }
        let queryRows = offendingRows(q), keyRows = offendingRows(k), valueRows = offendingRows(v)
        var rows: [Bool] = []
        for b in 0..<p.batch {
            for h in 0..<p.heads {
                let slice = b * p.kvHeads + p.kvHead(forQueryHead: h)
                // The first key whose K or V row offends: every row that sees it is reached.
                let firstKey = (0..<p.keyLength).first { keyRows[slice * p.keyLength + $0] || valueRows[slice * p.keyLength + $0] }
                for i in 0..<p.queryLength {
                    let visible = p.visibleKeys(row: i)
                    let reached = queryRows[(b * p.heads + h) * p.queryLength + i] || (firstKey.map { $0 < visible } ?? false)
                    rows.append(visible > 0 && reached)
                }
            }
        }
        return rows
    }

    /// `values` with every offending element replaced by 0.
    static func cleaned(_ values: [Float], _ method: AttentionMethod) -> [Float] {
        values.map { offends($0, method) ? 0 : $0 }
    }
}
