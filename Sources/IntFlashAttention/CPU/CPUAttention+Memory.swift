extension CPUAttention {
    /// Host bytes a CPU call of `method` on `problem` allocates at its peak, about, besides
    /// the caller's fp32 inputs: `inputCopies` fp32 copies of Q, K and V made by the entry
    /// point, the copies with offending elements zeroed (``InputScreen``) when `offending`,
    /// the method's rounded, quantized and packed operands (padded to 16 channels and 64 keys)
    /// with the scratch of `threads` workers, and the fp32 output with its log-sum-exp.
    /// `Int.max` when it does not fit in 64 bits.
    public static func hostBytes(
        _ method: AttentionMethod, problem p: AttentionProblem, threads: Int? = nil, inputCopies: Int = 0,
        offending: Bool = false
    ) -> Int {
        guard p.headDim >= 0, p.keyLength >= 0, p.headDim <= AttentionProblem.maxHeadDim, p.keyLength <= Int.max - 64
        else { return .max }
        let paddedDim = (p.headDim + 15) / 16 * 16
        let paddedKeys = QuantizedAttentionInputs.paddedKeyLength(p.keyLength)
        guard let slices = CheckedSize.product(p.batch, p.kvHeads), let keyScales = CheckedSize.product(slices, paddedKeys)
        else { return .max }
        let workers = min(max(slices, 1), ParallelWork.workerCount(threads))
        guard let q = CheckedSize.product(p.batch, p.heads, p.queryLength, p.headDim),
              let kv = CheckedSize.product(p.batch, p.kvHeads, p.keyLength, p.headDim),
              let rows = CheckedSize.product(p.batch, p.heads, p.queryLength),
              let paddedQ = CheckedSize.product(p.batch, p.heads, p.queryLength, paddedDim),
              let paddedKV = CheckedSize.product(p.batch, p.kvHeads, paddedKeys, paddedDim),
              let transposedV = CheckedSize.product(slices, paddedKeys, p.headDim),
              let sliceScratch = CheckedSize.product(workers, p.keyLength, p.headDim),
              let inputs = CheckedSize.sum(q, kv, kv)
        else { return .max }
        // (elements, bytes per element) of every buffer alive at the method's peak.
        var terms: [(Int, Int)] = [(inputs, 4 * (inputCopies + (offending ? 1 : 0))), (q, 4), (rows, 4)]
        switch method {
        case .fp32:
            terms += [(paddedQ, 4), (paddedKV, 8)]
        case .fp16:
            terms += [(inputs, 4), (paddedQ, 4), (paddedKV, 8)]
        case .fp8E4M3, .fp8E5M2:
            terms += [(inputs, 5), (paddedQ, 4), (paddedKV, 8)]
        case .int8, .int8Paper, .int4:
            // Codes and scales, then the tiles' packed operands; each worker smooths and
            // quantizes one (batch, kv head) slice in fp32 and byte scratch.
            terms += [(q, 1), (kv, 1), (transposedV, 1), (rows, 4), (keyScales, 8),
                      (paddedQ, 1), (paddedKV, 2), (sliceScratch, 5)]
        }
        var total = 0
        for (count, bytes) in terms {
            guard let term = CheckedSize.product(count, bytes), let sum = CheckedSize.sum(total, term) else { return .max }
            total = sum
        }
        return total
    }

    /// Throws `outOfMemory` when the host cannot give a CPU call of `method` the bytes of
    /// ``hostBytes(_:problem:threads:inputCopies:offending:)``: for entry points that make
    /// `inputCopies` fp32 copies of the inputs before running.
    public static func reserveHostMemory(
        _ method: AttentionMethod, problem: AttentionProblem, threads: Int? = nil, inputCopies: Int = 0,
        offending: Bool = false
    ) throws(AttentionError) {
        let bytes = hostBytes(method, problem: problem, threads: threads, inputCopies: inputCopies, offending: offending)
        try HostMemory.reserve(bytes, for: "the CPU path's buffers (\(method.rawValue), \(problem))")
    }
}
