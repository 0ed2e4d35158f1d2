import CIntFlashAttentionCPU

/// Q, K and V of a whole problem quantized for an integer method (`int8`, `int8-paper`,
/// `int4`) on the host: the codes and scales of docs/SCHEMES.md in natural key order. The
/// GPU's form (``QuantizedDeviceInputs``) holds the same values with Vt's keys permuted within
/// each group of 32, `int8`'s Vt in excess-128 form and the marks of offending inputs after the
/// scales; the CUDA quantizers are checked bit for bit against this after undoing those.
///
/// * `queryCodes`: s8 [B, H, Nq, D] row-major (`int4`: two codes per byte, [B, H, Nq, D/2]).
/// * `queryScales`: fp32 [B, H, Nq], already multiplied by `softmaxScale · log2(e)`.
/// * `keyCodes`: s8 [B, Hkv, Nk, D] (`int4`: [B, Hkv, Nk, D/2]); smoothed first for `int8`, `int4`.
/// * `keyScales`: fp32 [B, Hkv, NkPad / 8], one per group of 8 keys (`int8`, see ``KeyGroups``),
///   or [B, Hkv, Nk], one per key (`int8-paper`, `int4`).
/// * `valueCodesTransposed`: s8 [B, Hkv, D, NkPad], NkPad = Nk rounded up to 128, zero padded.
/// * `valueScales`: fp32 [B, Hkv, D] (per channel: `int8`, `int4`) or [B, Hkv] (`int8-paper`).
public struct QuantizedAttentionInputs: Sendable {
    /// The integer method the inputs are quantized for.
    public var method: AttentionMethod
    /// The problem the inputs belong to.
    public var problem: AttentionProblem
    /// s8 [B, H, Nq, D] (`int4`: two codes per byte, [B, H, Nq, D/2]).
    public var queryCodes: [Int8]
    /// fp32 [B, H, Nq], already multiplied by `softmaxScale · log2(e)`.
    public var queryScales: [Float]
    /// s8 [B, Hkv, Nk, D] (`int4`: [B, Hkv, Nk, D/2]); smoothed first for `int8`, `int4`.
    public var keyCodes: [Int8]
    /// fp32 [B, Hkv, NkPad / 8] per key group (`int8`) or [B, Hkv, Nk] per key.
    public var keyScales: [Float]
    /// s8 [B, Hkv, D, NkPad], zero padded past Nk.
    public var valueCodesTransposed: [Int8]
    /// fp32 [B, Hkv, D] (per channel: `int8`, `int4`) or [B, Hkv] (`int8-paper`).
    public var valueScales: [Float]

    /// Nk rounded up to a multiple of ``keyPadding``: the row length of `valueCodesTransposed`.
    public var paddedKeyLength: Int { Self.paddedKeyLength(problem.keyLength) }
    /// Whether K has one scale per group of 8 keys (`int8`) rather than one per key.
    public var keyScalesPerGroup: Bool { method == .int8 }
    /// Bytes per token row of `queryCodes` and `keyCodes`: D, or D/2 for `int4`.
    public var codeBytesPerRow: Int { method == .int4 ? problem.headDim / 2 : problem.headDim }
    /// Whether V has one scale per channel (else one per (batch, kv head)).
    public var valueScalesPerChannel: Bool { method != .int8Paper }

    /// Keys are padded to a multiple of this: the `int8` scheme's key tile.
    public static let keyPadding = KeyGroups.tileKeys

    static func paddedKeyLength(_ keyLength: Int) -> Int {
        (keyLength + keyPadding - 1) / keyPadding * keyPadding
    }

    /// Quantizes fp32 Q, K, V in BHND order (q: B·H·Nq·D, k and v: B·Hkv·Nk·D) for `method`.
    /// Throws `unsupportedMethod` for the floating-point methods and `shapeMismatch` for
    /// wrong element counts. `threads` workers share the work (default: every core).
    public static func quantize(
        method: AttentionMethod, problem: AttentionProblem, q: [Float], k: [Float], v: [Float], threads: Int? = nil
    ) throws(AttentionError) -> QuantizedAttentionInputs {
        try quantize(method: method, problem: problem, q: q, k: k, v: v, threads: threads, isa: .selected)
    }

    /// `quantize` on an explicit instruction set (every one gives the same bits).
    public static func quantize(
        method: AttentionMethod, problem: AttentionProblem, q: [Float], k: [Float], v: [Float], threads: Int? = nil,
        isa: CPUKernelISA
    ) throws(AttentionError) -> QuantizedAttentionInputs {
        let levels: Int
        switch method {
        case .int8, .int8Paper: levels = SymmetricQuantization.int8Levels
        case .int4: levels = SymmetricQuantization.int4Levels
        case .fp32, .fp16, .fp8E4M3, .fp8E5M2:
            throw .unsupportedMethod(method: method.rawValue, backend: "quantization", reason: "not an integer method")
        }
        try problem.validate()
        try CPUAttention.validateCounts(problem, q: q, k: k, v: v)

        let p = problem
        let d = p.headDim
        let paddedKeys = paddedKeyLength(p.keyLength)
        let smooth = method != .int8Paper
        let pack4 = method == .int4
        let codeRow = pack4 ? d / 2 : d
        let scoreScale = p.softmaxScale * Float(1.4426950408889634)  // sm · log2(e)

        var result = QuantizedAttentionInputs(
            method: method, problem: problem,
            queryCodes: [Int8](repeating: 0, count: p.batch * p.heads * p.queryLength * codeRow),
            queryScales: [Float](repeating: 0, count: p.batch * p.heads * p.queryLength),
            keyCodes: [Int8](repeating: 0, count: p.batch * p.kvHeads * p.keyLength * codeRow),
            keyScales: [Float](repeating: 0, count: p.batch * p.kvHeads * (method == .int8 ? paddedKeys / 8 : p.keyLength)),
            valueCodesTransposed: [Int8](repeating: 0, count: p.batch * p.kvHeads * d * paddedKeys),
            valueScales: [Float](repeating: 0, count: p.batch * p.kvHeads * (smooth ? d : 1)))

        let slices = QuantizationSlices(
            levels: levels, headDim: d, keyLength: p.keyLength, paddedKeys: paddedKeys,
            smoothKeys: smooth, keyGroups: method == .int8, valuesPerChannel: smooth, packInt4: pack4,
            isa: isa.clampedToSupported.cValue)
        let queryRows = p.batch * p.heads * p.queryLength
        if queryRows > 0 {
            q.withUnsafeBufferPointer { source in
                result.queryCodes.withUnsafeMutableBufferPointer { codes in
                    result.queryScales.withUnsafeMutableBufferPointer { scales in
                        let codeBase = SharedMutablePointer(base: codes.baseAddress!)
                        let scaleBase = SharedMutablePointer(base: scales.baseAddress!)
                        let rowsPerItem = 64
                        ParallelWork.forEach(count: (queryRows + rowsPerItem - 1) / rowsPerItem, threads: threads) { item in
                            let rows = item * rowsPerItem..<min(queryRows, (item + 1) * rowsPerItem)
                            slices.quantizeQueryRows(
                                rows, source: source.baseAddress!, codes: codeBase.base, scales: scaleBase.base,
                                scoreScale: scoreScale)
                        }
                    }
                }
            }
        }
        k.withUnsafeBufferPointer { keys in
            v.withUnsafeBufferPointer { values in
                result.keyCodes.withUnsafeMutableBufferPointer { kCodes in
                    result.keyScales.withUnsafeMutableBufferPointer { kScales in
                        result.valueCodesTransposed.withUnsafeMutableBufferPointer { vCodes in
                            result.valueScales.withUnsafeMutableBufferPointer { vScales in
                                let output = KeyValueOutput(
                                    keyCodes: kCodes.baseAddress!, keyScales: kScales.baseAddress!,
                                    valueCodes: vCodes.baseAddress!, valueScales: vScales.baseAddress!)
                                ParallelWork.forEach(count: p.batch * p.kvHeads, threads: threads) { slice in
                                    slices.quantizeKeyValueSlice(
                                        slice, keys: keys.baseAddress!, values: values.baseAddress!, output: output)
                                }
                            }
                        }
                    }
                }
            }
        }
        return result
    }
}

/// Destination buffers of the K and V quantization, shared by workers writing disjoint slices.
private struct KeyValueOutput: @unchecked Sendable {
    let keyCodes: UnsafeMutablePointer<Int8>
    let keyScales: UnsafeMutablePointer<Float>
    let valueCodes: UnsafeMutablePointer<Int8>
    let valueScales: UnsafeMutablePointer<Float>
}

/// The per-row and per-slice steps of `QuantizedAttentionInputs.quantize`, on the vectorized
/// C quantizers (the same rule as `SymmetricQuantization`, bit for bit).
private struct QuantizationSlices {
    let levels: Int
    let headDim: Int
    let keyLength: Int
    let paddedKeys: Int
    let smoothKeys: Bool
    /// One K scale per group of 8 keys (`int8`), else one per key.
    let keyGroups: Bool
    let valuesPerChannel: Bool
    let packInt4: Bool
    let isa: intfa_isa

    var codeBytesPerRow: Int { packInt4 ? headDim / 2 : headDim }

    func quantizeQueryRows(
        _ rows: Range<Int>, source: UnsafePointer<Float>, codes: UnsafeMutablePointer<Int8>,
        scales: UnsafeMutablePointer<Float>, scoreScale: Float
    ) {
        quantizeRows(
            source + rows.lowerBound * headDim, count: rows.count, scaleMultiplier: scoreScale,
            codes: codes + rows.lowerBound * codeBytesPerRow, scales: scales + rows.lowerBound)
    }

    /// K (smoothed when asked; per key group or per token) and V per channel or per tensor, for
    /// one (batch, kv head).
    func quantizeKeyValueSlice(
        _ slice: Int, keys: UnsafePointer<Float>, values: UnsafePointer<Float>, output: KeyValueOutput
    ) {
        let d = headDim, n = keyLength
        let keySlice = keys + slice * n * d
        let keyCodes = output.keyCodes + slice * n * codeBytesPerRow
        let keyScales = output.keyScales + slice * (keyGroups ? paddedKeys / 8 : n)
        let quantizeKeys = { (rows: UnsafePointer<Float>) in
            if keyGroups {
                intfa_quantize_key_groups(isa, rows, n, paddedKeys, Int32(d), Int32(levels), keyCodes, keyScales)
            } else {
                quantizeRows(rows, count: n, scaleMultiplier: 1, codes: keyCodes, scales: keyScales)
            }
        }
        if smoothKeys {
            withUnsafeTemporaryAllocation(of: Float.self, capacity: n * d) { smoothed in
                withUnsafeTemporaryAllocation(of: Double.self, capacity: 2 * d) { scratch in
                    intfa_smooth_keys(isa, keySlice, n, Int32(d), smoothed.baseAddress!, scratch.baseAddress!)
                }
                quantizeKeys(UnsafePointer(smoothed.baseAddress!))
            }
        } else {
            quantizeKeys(keySlice)
        }

        let valueSlice = values + slice * n * d
        let transposed = output.valueCodes + slice * d * paddedKeys
        let int8Levels = Int32(SymmetricQuantization.int8Levels)
        withUnsafeTemporaryAllocation(of: Int8.self, capacity: n * d) { rowMajor in
            if valuesPerChannel {
                withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * d) { scratch in
                    intfa_quantize_channels(
                        isa, valueSlice, n, Int32(d), int8Levels, rowMajor.baseAddress!,
                        output.valueScales + slice * d, scratch.baseAddress!)
                }
            } else {
                intfa_quantize_rows(
                    isa, valueSlice, 1, n * d, int8Levels, 1, rowMajor.baseAddress!, output.valueScales + slice)
            }
            intfa_transpose_codes(rowMajor.baseAddress!, n, Int32(d), paddedKeys, transposed)
        }
    }

    /// Quantizes `count` token rows; INT4 codes go through a scratch buffer and are packed
    /// low nibble first.
    private func quantizeRows(
        _ values: UnsafePointer<Float>, count: Int, scaleMultiplier: Float,
        codes: UnsafeMutablePointer<Int8>, scales: UnsafeMutablePointer<Float>
    ) {
        guard packInt4 else {
            intfa_quantize_rows(isa, values, count, headDim, Int32(levels), scaleMultiplier, codes, scales)
            return
        }
        withUnsafeTemporaryAllocation(of: Int8.self, capacity: count * headDim) { unpacked in
            intfa_quantize_rows(isa, values, count, headDim, Int32(levels), scaleMultiplier, unpacked.baseAddress!, scales)
            for i in 0..<count * headDim / 2 {
                let low = UInt8(bitPattern: unpacked[2 * i]) & 0x0F
                let high = UInt8(bitPattern: unpacked[2 * i + 1]) & 0x0F
                codes[i] = Int8(bitPattern: low | high << 4)
            }
        }
    }
}
