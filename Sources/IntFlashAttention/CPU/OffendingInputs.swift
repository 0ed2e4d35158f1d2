import CIntFlashAttentionCPU

/// The non-finite contract of the CPU path (and of ``CUDAAttention/run(_:problem:q:k:v:outputType:computeLogSumExp:validateInputs:)``,
/// which shares it): an input element is *offending* when it is NaN or ±Inf, or, where a
/// method rounds its inputs to fp16, when its magnitude is 65520 or more (it rounds to ±Inf).
/// Calls that validate throw at the first one. Calls that do not return NaN in exactly the
/// output rows (and log-sum-exps) it reaches: a query row holding one, and every row that sees
/// a key whose K or V row holds one. Rows that see no key stay 0 (log-sum-exp −∞), and every
/// other row is computed as if the offending elements were 0, so it is what the scheme gives
/// without them: quantization scales, K's channel mean and V's channel maxima come from the
/// finite values only.
public enum InputScreen {
    /// fp16's largest finite value.
    static let fp16Largest: Float = 65504
    /// The magnitude from which an fp32 value rounds to ±Inf in fp16 (halfway to 2^16).
    static let fp16Overflow: Float = 65520

    /// The magnitude from which an input offends under `method`: fp16's overflow for `fp16`,
    /// which rounds its inputs to fp16, else infinity (only NaN and ±Inf offend).
    static func limit(for method: AttentionMethod) -> Float {
        method == .fp16 ? fp16Overflow : .infinity
    }

    /// The first element of `values` whose magnitude is not below `limit` (NaN included).
    static func firstOutside(_ values: UnsafeBufferPointer<Float>, limit: Float) -> Int? {
        guard let base = values.baseAddress, !values.isEmpty else { return nil }
        let index = intfa_first_outside(base, values.count, limit)
        return index < 0 ? nil : index
    }

    static func firstOutside(_ values: [Float], limit: Float) -> Int? {
        values.withUnsafeBufferPointer { firstOutside($0, limit: limit) }
    }

    /// Throws for the first offending element of `values`, naming `tensor`: `nonFiniteInput`
    /// for NaN or ±Inf, `inputOutOfRange` for a finite value beyond `limit`, whose cause
    /// `reason` gives.
    static func validate(_ values: [Float], tensor: String, limit: Float, reason: @autoclosure () -> String) throws(AttentionError) {
        guard let index = firstOutside(values, limit: limit) else { return }
        let value = values[index]
        if !value.isFinite { throw .nonFiniteInput(tensor: tensor, index: index) }
        throw .inputOutOfRange(tensor: tensor, index: index, value: value, reason: reason())
    }

    /// Throws for the first offending element of Q, K, then V (fp32, BHND) under `method`:
    /// `nonFiniteInput` for NaN or ±Inf, `inputOutOfRange` for a value that overflows fp16
    /// under `fp16`.
    public static func validate(_ method: AttentionMethod, q: [Float], k: [Float], v: [Float]) throws(AttentionError) {
        let limit = limit(for: method)
        for (name, values) in [("q", q), ("k", k), ("v", v)] {
            try validate(values, tensor: name, limit: limit, reason: fp16Reason(method))
        }
    }

    /// Why a value at or beyond fp16's overflow cannot be used by `method`.
    static func fp16Reason(_ method: AttentionMethod) -> String {
        "method \(method.rawValue) rounds its inputs to fp16, whose largest finite value is \(Int(fp16Largest))"
    }
}

/// Which rows of a call's Q, K and V hold offending elements (``InputScreen``), and so which
/// output rows the contract makes NaN. Inputs are fp32 in BHND order.
struct OffendingInputs {
    let problem: AttentionProblem
    let limit: Float
    /// Query rows (index in [B·H·Nq], BHND order) that hold an offending element.
    var queryRows: Set<Int> = []
    /// For each (batch, kv head) slice, the first key whose K or V row holds an offending
    /// element; `keyLength` when none does.
    var firstKey: [Int]

    /// nil when no element is offending: one vectorized pass over each tensor, the only cost
    /// of the contract for clean inputs.
    static func find(problem p: AttentionProblem, q: [Float], k: [Float], v: [Float], limit: Float) -> OffendingInputs? {
        guard InputScreen.firstOutside(q, limit: limit) != nil || InputScreen.firstOutside(k, limit: limit) != nil
            || InputScreen.firstOutside(v, limit: limit) != nil
        else { return nil }
        var found = OffendingInputs(problem: p, limit: limit, firstKey: [Int](repeating: p.keyLength, count: p.batch * p.kvHeads))
        let d = p.headDim
        q.withUnsafeBufferPointer { q in
            for row in 0..<(p.batch * p.heads * p.queryLength) {
                let values = UnsafeBufferPointer(rebasing: q[(row * d)..<((row + 1) * d)])
                if InputScreen.firstOutside(values, limit: limit) != nil { found.queryRows.insert(row) }
            }
        }
        for tensor in [k, v] {
            tensor.withUnsafeBufferPointer { x in
                for slice in 0..<(p.batch * p.kvHeads) {
                    for key in 0..<found.firstKey[slice] {
                        let row = slice * p.keyLength + key
                        let values = UnsafeBufferPointer(rebasing: x[(row * d)..<((row + 1) * d)])
                        if InputScreen.firstOutside(values, limit: limit) != nil {
                            found.firstKey[slice] = key
                            break
                        }
                    }
                }
            }
        }
        return found
    }

    /// `values` with every offending element replaced by 0.
    func cleaned(_ values: [Float]) -> [Float] {
        values.map { abs($0) < limit ? $0 : 0 }
    }

    /// Whether the contract makes output row `row` (index in [B·H·Nq], BHND order) NaN: it
    /// sees a key, and its query or a key it sees holds an offending element.
    func reaches(row: Int) -> Bool {
        let p = problem
        let visible = p.visibleKeys(row: row % p.queryLength)
        guard visible > 0 else { return false }
        if queryRows.contains(row) { return true }
        let batchHead = row / p.queryLength
        let slice = batchHead / p.heads * p.kvHeads + p.kvHead(forQueryHead: batchHead % p.heads)
        return firstKey[slice] < visible
    }

    /// Writes NaN into every reached row of a BHND output and of its log-sum-exp (when not
    /// empty).
    func poison<T: FloatingPoint>(output: inout [T], logSumExp: inout [Float]) {
        let d = problem.headDim
        for row in 0..<(problem.batch * problem.heads * problem.queryLength) where reaches(row: row) {
            for c in 0..<d { output[row * d + c] = .nan }
            if !logSumExp.isEmpty { logSumExp[row] = .nan }
        }
    }
}
