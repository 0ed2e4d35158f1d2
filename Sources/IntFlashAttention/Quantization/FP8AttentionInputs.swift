/// Q, K and V of a whole problem in FP8 with per-tensor scales (docs/SCHEMES.md,
/// `fp8-e4m3` / `fp8-e5m2`): one scale per (batch, head) of Q and per (batch, kv head) of K
/// and V. Codes keep the BHND order of the inputs.
public struct FP8AttentionInputs: Sendable {
    /// The FP8 format of the codes.
    public var format: FP8Format
    /// The problem the inputs belong to.
    public var problem: AttentionProblem
    /// [B, H, Nq, D] codes.
    public var queryCodes: [UInt8]
    /// [B, H]: `sQ · (softmaxScale · log2 e)`, the factor applied to dot(Qf8, Kf8) before `sK`.
    public var queryScales: [Float]
    /// [B, Hkv, Nk, D] codes.
    public var keyCodes: [UInt8]
    /// [B, Hkv]
    public var keyScales: [Float]
    /// [B, Hkv, Nk, D] codes.
    public var valueCodes: [UInt8]
    /// [B, Hkv]
    public var valueScales: [Float]

    /// Quantizes fp32 BHND inputs; throws `shapeMismatch` for wrong element counts.
    public static func quantize(
        format: FP8Format, problem: AttentionProblem, q: [Float], k: [Float], v: [Float]
    ) throws(AttentionError) -> FP8AttentionInputs {
        try problem.validate()
        try CPUAttention.validateCounts(problem, q: q, k: k, v: v)
        let p = problem
        let scoreScale = p.softmaxScale * Float(1.4426950408889634)
        func perSlice(_ values: [Float], slices: Int) -> ([UInt8], [Float]) {
            let length = values.count / max(slices, 1)
            var codes = [UInt8]()
            codes.reserveCapacity(values.count)
            var scales = [Float]()
            values.withUnsafeBufferPointer { buffer in
                for slice in 0..<slices {
                    let part = UnsafeBufferPointer(rebasing: buffer[slice * length..<(slice + 1) * length])
                    let (sliceCodes, scale) = FP8TensorQuantization.quantize(part, format: format)
                    codes += sliceCodes
                    scales.append(scale)
                }
            }
            return (codes, scales)
        }
        let (qCodes, qScales) = perSlice(q, slices: p.batch * p.heads)
        let (kCodes, kScales) = perSlice(k, slices: p.batch * p.kvHeads)
        let (vCodes, vScales) = perSlice(v, slices: p.batch * p.kvHeads)
        return FP8AttentionInputs(
            format: format, problem: problem, queryCodes: qCodes, queryScales: qScales.map { $0 * scoreScale },
            keyCodes: kCodes, keyScales: kScales, valueCodes: vCodes, valueScales: vScales)
    }
}
