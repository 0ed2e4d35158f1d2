/// Packed variable-length attention, as FlashAttention-style APIs take a batch of prompts of
/// different lengths: every sequence's tokens one after another in [totalTokens, heads,
/// headDim] tensors, and cumulative offsets (`cuSeqlens`, B + 1 entries from 0) saying where
/// each sequence starts. Sequence b's queries attend to its own keys only, as a dense call
/// on that sequence would (bottom-right causal alignment per sequence).
public struct VariableLengthBatch: Sendable, Equatable {
    /// Cumulative query offsets: sequence b's queries are tokens cuSeqlensQ[b]..<cuSeqlensQ[b + 1].
    public let cuSeqlensQ: [Int]
    /// Cumulative key offsets, likewise.
    public let cuSeqlensK: [Int]
    public let heads: Int
    public let kvHeads: Int
    public let headDim: Int

    /// Validates the offsets: B + 1 of them for both, from 0, never decreasing.
    public init(cuSeqlensQ: [Int], cuSeqlensK: [Int], heads: Int, kvHeads: Int? = nil, headDim: Int) throws(AttentionError) {
        for (name, offsets) in [("cuSeqlensQ", cuSeqlensQ), ("cuSeqlensK", cuSeqlensK)] {
            guard offsets.first == 0 else {
                throw .invalidDimension(name: name, value: offsets.first ?? -1, requirement: "must start at 0 (B + 1 cumulative offsets)")
            }
            if let step = zip(offsets, offsets.dropFirst()).first(where: { $0.1 < $0.0 }) {
                throw .invalidDimension(name: name, value: step.1, requirement: "must not decrease (it follows \(step.0))")
            }
        }
        guard cuSeqlensQ.count == cuSeqlensK.count else {
            throw .shapeMismatch(tensor: "cuSeqlensK", expected: "\(cuSeqlensQ.count) offsets, as cuSeqlensQ", actual: "\(cuSeqlensK.count)")
        }
        // The extents every sequence must satisfy as a dense problem.
        _ = try AttentionProblem(heads: heads, kvHeads: kvHeads, queryLength: 0, keyLength: 1, headDim: headDim)
        self.cuSeqlensQ = cuSeqlensQ
        self.cuSeqlensK = cuSeqlensK
        self.heads = heads
        self.kvHeads = kvHeads ?? heads
        self.headDim = headDim
    }

    /// Sequences in the batch.
    public var batch: Int { cuSeqlensQ.count - 1 }
    /// Query tokens over all sequences.
    public var totalQueryTokens: Int { cuSeqlensQ.last ?? 0 }
    /// Key tokens over all sequences.
    public var totalKeyTokens: Int { cuSeqlensK.last ?? 0 }
    /// The longest sequence's query and key lengths (what kernels size their grids by).
    public var maxLengths: (query: Int, key: Int) {
        func longest(_ c: [Int]) -> Int { zip(c, c.dropFirst()).map { $1 - $0 }.max() ?? 0 }
        return (longest(cuSeqlensQ), longest(cuSeqlensK))
    }
}

extension CPUAttention {
    /// `method` on a packed variable-length batch: q [totalQueryTokens, heads, headDim] and k,
    /// v [totalKeyTokens, kvHeads, headDim] (fp32), one dense call per sequence. Returns the
    /// output in q's packed layout and the natural-log log-sum-exp [heads, totalQueryTokens]
    /// (as FlashAttention's varlen API lays it out). A sequence without keys gives 0 and −∞.
    public static func runVariableLength(
        _ method: AttentionMethod, batch: VariableLengthBatch, q: [Float], k: [Float], v: [Float],
        causal: Bool = false, softmaxScale: Float? = nil, threads: Int? = nil
    ) throws(AttentionError) -> CPUAttentionOutput {
        let h = batch.heads, hkv = batch.kvHeads, d = batch.headDim
        let totalQ = batch.totalQueryTokens, totalK = batch.totalKeyTokens
        guard q.count == totalQ * h * d else {
            throw .shapeMismatch(tensor: "q", expected: "[\(totalQ), \(h), \(d)] (tokens, heads, head dim)", actual: "\(q.count) elements")
        }
        for (name, x) in [("k", k), ("v", v)] where x.count != totalK * hkv * d {
            throw .shapeMismatch(tensor: name, expected: "[\(totalK), \(hkv), \(d)] (tokens, heads, head dim)", actual: "\(x.count) elements")
        }
        var output = [Float](repeating: 0, count: q.count)
        var logSumExp = [Float](repeating: -.infinity, count: h * totalQ)
        for b in 0..<batch.batch {
            let q0 = batch.cuSeqlensQ[b], nq = batch.cuSeqlensQ[b + 1] - q0
            let k0 = batch.cuSeqlensK[b], nk = batch.cuSeqlensK[b + 1] - k0
            guard nq > 0, nk > 0 else { continue }
            let problem = try AttentionProblem(
                heads: h, kvHeads: hkv, queryLength: nq, keyLength: nk, headDim: d, softmaxScale: softmaxScale, causal: causal)
            let result = try run(
                method, problem: problem, q: headMajor(q, first: q0, tokens: nq, heads: h, headDim: d),
                k: headMajor(k, first: k0, tokens: nk, heads: hkv, headDim: d),
                v: headMajor(v, first: k0, tokens: nk, heads: hkv, headDim: d), threads: threads)
            for head in 0..<h {
                for t in 0..<nq {
                    let source = (head * nq + t) * d, target = ((q0 + t) * h + head) * d
                    output.replaceSubrange(target..<(target + d), with: result.output[source..<(source + d)])
                    logSumExp[head * totalQ + q0 + t] = result.logSumExp[head * nq + t]
                }
            }
        }
        return CPUAttentionOutput(output: output, logSumExp: logSumExp)
    }

    /// Tokens first..<first + tokens of a packed [total, heads, headDim] tensor as [heads,
    /// tokens, headDim] (one batch entry in BHND order).
    private static func headMajor(_ x: [Float], first: Int, tokens: Int, heads: Int, headDim d: Int) -> [Float] {
        var result = [Float](repeating: 0, count: heads * tokens * d)
        for head in 0..<heads {
            for t in 0..<tokens {
                let source = ((first + t) * heads + head) * d
                result.replaceSubrange(((head * tokens + t) * d)..<((head * tokens + t + 1) * d), with: x[source..<(source + d)])
            }
        }
        return result
    }
}
