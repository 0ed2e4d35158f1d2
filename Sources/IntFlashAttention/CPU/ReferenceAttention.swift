import Foundation

extension CPUAttention {
    /// Exact attention in float64, the oracle of every method: naive softmax(scale · Q·Kᵀ)·V
    /// per row, causal bottom-right (`AttentionProblem.visibleKeys(row:)`), grouped-query via
    /// `kvHead(forQueryHead:)`. Rows that see no key give 0. Inputs are fp32 in BHND order;
    /// the result is B·H·Nq·D in BHND order. NaN and ±Inf inputs follow the CPU path's
    /// contract (``InputScreen``): NaN in exactly the rows they reach, every other row exact.
    public static func reference(
        _ problem: AttentionProblem, q: [Float], k: [Float], v: [Float]
    ) throws(AttentionError) -> [Double] {
        try problem.validate()
        try validateCounts(problem, q: q, k: k, v: v)
        if problem.isEmpty { return [] }
        try HostMemory.reserve(
            CheckedSize.product(problem.queryElementCount, 8) ?? .max, for: "the float64 reference's output (\(problem))")
        guard let offending = OffendingInputs.find(problem: problem, q: q, k: k, v: v, limit: .infinity) else {
            return exact(problem, q: q, k: k, v: v)
        }
        var output = exact(problem, q: offending.cleaned(q), k: offending.cleaned(k), v: offending.cleaned(v))
        var noLogSumExp: [Float] = []
        offending.poison(output: &output, logSumExp: &noLogSumExp)
        return output
    }

    /// The float64 attention itself, on finite inputs.
    private static func exact(_ p: AttentionProblem, q: [Float], k: [Float], v: [Float]) -> [Double] {
        let d = p.headDim, nq = p.queryLength, nk = p.keyLength
        var output = [Double](repeating: 0, count: p.queryElementCount)
        let scale = Double(p.softmaxScale)
        q.withUnsafeBufferPointer { qBuffer in
            k.withUnsafeBufferPointer { kBuffer in
                v.withUnsafeBufferPointer { vBuffer in
                    output.withUnsafeMutableBufferPointer { outBuffer in
                        let out = SharedMutablePointer(base: outBuffer.baseAddress!)
                        // Rows are independent: chunks of them keep every thread busy when
                        // B·H is small (the check's long single-head cases).
                        let rowsPerItem = 16
                        let chunks = (nq + rowsPerItem - 1) / rowsPerItem
                        ParallelWork.forEach(count: p.batch * p.heads * chunks, threads: nil) { item in
                            let bh = item / chunks, firstRow = (item % chunks) * rowsPerItem
                            let b = bh / p.heads, h = bh % p.heads
                            let slice = b * p.kvHeads + p.kvHead(forQueryHead: h)
                            let keys = kBuffer.baseAddress! + slice * nk * d
                            let values = vBuffer.baseAddress! + slice * nk * d
                            var scores = [Double](repeating: 0, count: nk)
                            var row = [Double](repeating: 0, count: d)
                            for i in firstRow..<min(nq, firstRow + rowsPerItem) {
                                let visible = p.visibleKeys(row: i)
                                let query = qBuffer.baseAddress! + (bh * nq + i) * d
                                let target = out.base + (bh * nq + i) * d
                                guard visible > 0 else { continue }
                                var maximum = -Double.infinity
                                for j in 0..<visible {
                                    var dot = 0.0
                                    for c in 0..<d { dot += Double(query[c]) * Double(keys[j * d + c]) }
                                    scores[j] = dot * scale
                                    maximum = max(maximum, scores[j])
                                }
                                var sum = 0.0
                                for c in 0..<d { row[c] = 0 }
                                for j in 0..<visible {
                                    let weight = exp(scores[j] - maximum)
                                    sum += weight
                                    for c in 0..<d { row[c] += weight * Double(values[j * d + c]) }
                                }
                                for c in 0..<d { target[c] = row[c] / sum }
                            }
                        }
                    }
                }
            }
        }
        return output
    }
}
