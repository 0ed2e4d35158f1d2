import Foundation

extension PagedKVCache {
    /// Keys per P block of the decode softmax: fixed by the scheme, so that results do not
    /// depend on the page size.
    public static let decodeBlockKeys = 64

    /// Attention of new query tokens on the cache, by the scheme of docs/SCHEMES.md ("The INT8
    /// KV cache"), in fp32 as a GPU kernel would compute it: the oracle of decode kernels.
    ///
    /// `queries` is [B, heads, queryLength, headDim] (fp32) for the B sequences listed in
    /// `sequences` (their keys and values for these tokens already appended); `heads` a
    /// multiple of the cache's KV heads (query heads h·g…h·g + g − 1 read KV head h). With
    /// `causal`, query i of a sequence of n cached tokens sees keys j ≤ n − queryLength + i
    /// (the new tokens see each other causally); without, every cached key. Returns the
    /// output [B, heads, queryLength, headDim] and the natural-log log-sum-exp [B, heads,
    /// queryLength] of the smoothed scores (as for `int8`: the exact value minus
    /// softmaxScale · q · mean(K); pieces of one sequence merge exactly with it). A row that
    /// sees no key gives 0 and −∞.
    public func decode(
        queries: [Float], sequences: [Int], heads: Int, queryLength: Int, softmaxScale: Float? = nil, causal: Bool = true
    ) throws(AttentionError) -> (output: [Float], logSumExp: [Float]) {
        let d = layout.headDim, hkv = layout.kvHeads, b = sequences.count
        guard heads >= 1, heads % hkv == 0 else { throw .headsNotDivisible(heads: heads, kvHeads: hkv) }
        guard queryLength >= 1 else { throw .invalidDimension(name: "queryLength", value: queryLength, requirement: "must be at least 1") }
        for s in sequences {
            guard lengths.indices.contains(s) else {
                throw .invalidDimension(name: "sequence", value: s, requirement: "must be in 0..<\(lengths.count)")
            }
            guard !causal || lengths[s] >= queryLength else {
                throw .invalidDimension(
                    name: "queryLength", value: queryLength,
                    requirement: "sequence \(s) holds \(lengths[s]) tokens; the new tokens' keys must be appended before a causal decode")
            }
        }
        guard queries.count == b * heads * queryLength * d else {
            throw .shapeMismatch(
                tensor: "queries", expected: "[\(b), \(heads), \(queryLength), \(d)] (sequences, heads, tokens, head dim)",
                actual: "\(queries.count) elements")
        }
        if let bad = queries.firstIndex(where: { !$0.isFinite }) { throw .nonFiniteInput(tensor: "queries", index: bad) }
        let scale = softmaxScale ?? 1 / Float(d).squareRoot()
        guard scale.isFinite, scale > 0 else { throw .invalidSoftmaxScale(scale) }
        let scoreScale = scale * Float(1.4426950408889634)  // sm · log2(e)

        var output = [Float](repeating: 0, count: queries.count)
        var logSumExp = [Float](repeating: -.infinity, count: b * heads * queryLength)
        var queryCodes = [Int8](repeating: 0, count: d)
        for (i, sequence) in sequences.enumerated() {
            let n = lengths[sequence]
            for h in 0..<heads {
                let kvHead = h / (heads / hkv)
                for row in 0..<queryLength {
                    let rowIndex = (i * heads + h) * queryLength + row
                    let visible = causal ? n - queryLength + row + 1 : n
                    let queryScale = queries.withUnsafeBufferPointer { values in
                        SymmetricQuantization.quantizeGroup(
                            values.baseAddress! + rowIndex * d, count: d, levels: SymmetricQuantization.int8Levels, into: &queryCodes)
                    }
                    let result = attendRow(
                        queryCodes: queryCodes, queryScale: queryScale * scoreScale, sequence: sequence, kvHead: kvHead, keys: visible)
                    output.replaceSubrange((rowIndex * d)..<((rowIndex + 1) * d), with: result.output)
                    logSumExp[rowIndex] = result.logSumExp
                }
            }
        }
        return (output, logSumExp)
    }

    /// One query row over the first `keys` keys of a sequence's KV head, block by block:
    ///   x_j  = Float(q·k_j) · (qs · sK_j)                       (log2 domain)
    ///   m'   = max(m, max_j x_j),  alpha = exp2(m − m'),  p_j = exp2(x_j − m')
    ///   u_j  = p_j · sV_j,  r = max_j u_j,  Pq_j = rne(u_j · 255 / r)   (u8: V's scales folded into P)
    ///   l    = l · alpha + Σ_j p_j
    ///   o[c] = o[c] · alpha + (r / 255) · Float(Σ_j Pq_j · Vq_j[c])     (u8·s8, int32)
    /// and at the end O = o / l, log-sum-exp = (m + log2 l) / log2 e.
    private func attendRow(
        queryCodes: [Int8], queryScale: Float, sequence: Int, kvHead: Int, keys: Int
    ) -> (output: [Float], logSumExp: Float) {
        let d = layout.headDim
        var output = [Float](repeating: 0, count: d)
        guard keys > 0 else { return (output, -.infinity) }
        var m = -Float.infinity, l: Float = 0
        var scores = [Float](repeating: 0, count: Self.decodeBlockKeys)
        var slots = [Int](repeating: 0, count: Self.decodeBlockKeys)
        var sums = [Int32](repeating: 0, count: d)
        for first in stride(from: 0, to: keys, by: Self.decodeBlockKeys) {
            let count = min(Self.decodeBlockKeys, keys - first)
            var blockMax = -Float.infinity
            for j in 0..<count {
                let slot = storageIndex(sequence: sequence, head: kvHead, position: first + j)
                var dot: Int32 = 0
                for c in 0..<d { dot += Int32(queryCodes[c]) * Int32(keyCodes[slot * d + c]) }
                slots[j] = slot
                scores[j] = Float(dot) * (queryScale * keyScales[slot])
                blockMax = max(blockMax, scores[j])
            }
            let newMax = max(m, blockMax)
            let alpha = m == -.infinity ? 0 : exp2(m - newMax)
            var probabilitySum: Float = 0, reference: Float = 0
            for j in 0..<count {
                scores[j] = exp2(scores[j] - newMax)  // p_j
                probabilitySum += scores[j]
                reference = max(reference, scores[j] * valueScales[slots[j]])
            }
            let inverse = reference > 0 ? 255 / reference : 0
            for c in 0..<d { sums[c] = 0 }
            for j in 0..<count {
                let code = Int32(SymmetricQuantization.roundedToNearestEven(min(scores[j] * valueScales[slots[j]] * inverse, 255)))
                guard code != 0 else { continue }
                for c in 0..<d { sums[c] += code * Int32(valueCodes[slots[j] * d + c]) }
            }
            let weight = reference / 255
            for c in 0..<d { output[c] = output[c] * alpha + weight * Float(sums[c]) }
            l = l * alpha + probabilitySum
            m = newMax
        }
        for c in 0..<d { output[c] /= l }
        return (output, (m + log2(l)) / Float(1.4426950408889634))
    }
}
