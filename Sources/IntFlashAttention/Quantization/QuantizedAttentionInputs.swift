/// Q, K and V of a whole problem quantized for an integer method (`int8`, `int8-paper`,
/// `int4`), in the layout handed to the GPU (docs/SCHEMES.md, "Layout of quantized tensors
/// handed to the GPU"). The CUDA quantization kernels are checked bit for bit against this.
///
/// * `queryCodes`: s8 [B, H, Nq, D] row-major (`int4`: two codes per byte, [B, H, Nq, D/2]).
/// * `queryScales`: fp32 [B, H, Nq], already multiplied by `softmaxScale · log2(e)`.
/// * `keyCodes`: s8 [B, Hkv, Nk, D] (`int4`: [B, Hkv, Nk, D/2]); smoothed first for `int8`, `int4`.
/// * `keyScales`: fp32 [B, Hkv, Nk].
/// * `valueCodesTransposed`: s8 [B, Hkv, D, NkPad], NkPad = Nk rounded up to 64, zero padded.
/// * `valueScales`: fp32 [B, Hkv, D] (per channel: `int8`, `int4`) or [B, Hkv] (`int8-paper`).
public struct QuantizedAttentionInputs: Sendable {
    public var method: AttentionMethod
    public var problem: AttentionProblem
    public var queryCodes: [Int8]
    public var queryScales: [Float]
    public var keyCodes: [Int8]
    public var keyScales: [Float]
    public var valueCodesTransposed: [Int8]
    public var valueScales: [Float]

    /// Nk rounded up to a multiple of the key block (64): the row length of `valueCodesTransposed`.
    public var paddedKeyLength: Int { Self.paddedKeyLength(problem.keyLength) }
    /// Bytes per token row of `queryCodes` and `keyCodes`: D, or D/2 for `int4`.
    public var codeBytesPerRow: Int { method == .int4 ? problem.headDim / 2 : problem.headDim }
    /// Whether V has one scale per channel (else one per (batch, kv head)).
    public var valueScalesPerChannel: Bool { method != .int8Paper }

    static func paddedKeyLength(_ keyLength: Int) -> Int {
        let block = AttentionMethod.keyBlock
        return (keyLength + block - 1) / block * block
    }

    /// Quantizes fp32 Q, K, V in BHND order (q: B·H·Nq·D, k and v: B·Hkv·Nk·D) for `method`.
    /// Throws `unsupportedMethod` for the floating-point methods and `shapeMismatch` for
    /// wrong element counts. `threads` workers share the work (default: every core).
    public static func quantize(
        method: AttentionMethod, problem: AttentionProblem, q: [Float], k: [Float], v: [Float], threads: Int? = nil
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
            keyScales: [Float](repeating: 0, count: p.batch * p.kvHeads * p.keyLength),
            valueCodesTransposed: [Int8](repeating: 0, count: p.batch * p.kvHeads * d * paddedKeys),
            valueScales: [Float](repeating: 0, count: p.batch * p.kvHeads * (smooth ? d : 1)))

        let slices = QuantizationSlices(
            levels: levels, headDim: d, keyLength: p.keyLength, paddedKeys: paddedKeys,
            smoothKeys: smooth, valuesPerChannel: smooth, packInt4: pack4)
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

/// The per-row and per-slice steps of `QuantizedAttentionInputs.quantize`.
private struct QuantizationSlices {
    let levels: Int
    let headDim: Int
    let keyLength: Int
    let paddedKeys: Int
    let smoothKeys: Bool
    let valuesPerChannel: Bool
    let packInt4: Bool

    var codeBytesPerRow: Int { packInt4 ? headDim / 2 : headDim }

    func quantizeQueryRows(
        _ rows: Range<Int>, source: UnsafePointer<Float>, codes: UnsafeMutablePointer<Int8>,
        scales: UnsafeMutablePointer<Float>, scoreScale: Float
    ) {
        withUnsafeTemporaryAllocation(of: Int8.self, capacity: headDim) { scratch in
            for row in rows {
                let scale = quantizeRow(source + row * headDim, into: codes + row * codeBytesPerRow, scratch: scratch)
                scales[row] = scale * scoreScale
            }
        }
    }

    /// K (smoothed when asked) per token and V per channel or per tensor, for one (batch, kv head).
    func quantizeKeyValueSlice(
        _ slice: Int, keys: UnsafePointer<Float>, values: UnsafePointer<Float>, output: KeyValueOutput
    ) {
        let d = headDim, n = keyLength
        let keySlice = keys + slice * n * d
        withUnsafeTemporaryAllocation(of: Int8.self, capacity: d) { scratch in
            let quantizeKeys = { (source: UnsafePointer<Float>) in
                for t in 0..<n {
                    let row = slice * n + t
                    output.keyScales[row] = quantizeRow(
                        source + t * d, into: output.keyCodes + row * codeBytesPerRow, scratch: scratch)
                }
            }
            if smoothKeys {
                let means = KeySmoothing.channelMeans(keySlice, tokens: n, channels: d)
                var smoothed = [Float](repeating: 0, count: n * d)
                for t in 0..<n {
                    for c in 0..<d { smoothed[t * d + c] = keySlice[t * d + c] - means[c] }
                }
                smoothed.withUnsafeBufferPointer { quantizeKeys($0.baseAddress!) }
            } else {
                quantizeKeys(keySlice)
            }
        }

        let valueSlice = values + slice * n * d
        let transposed = output.valueCodes + slice * d * paddedKeys
        let int8Levels = SymmetricQuantization.int8Levels
        if valuesPerChannel {
            SymmetricQuantization.quantizeChannelsTransposed(
                valueSlice, tokens: n, channels: d, levels: int8Levels,
                codes: transposed, paddedTokens: paddedKeys, scales: output.valueScales + slice * d)
        } else {
            let amax = SymmetricQuantization.absoluteMaximum(valueSlice, count: n * d)
            let (inverse, scale) = SymmetricQuantization.parameters(amax: amax, levels: int8Levels)
            for t in 0..<n {
                for c in 0..<d {
                    transposed[c * paddedKeys + t] = SymmetricQuantization.code(
                        valueSlice[t * d + c], inverse: inverse, levels: int8Levels)
                }
            }
            output.valueScales[slice] = scale
        }
    }

    /// Quantizes one token row; INT4 codes go through `scratch` and are packed low nibble first.
    private func quantizeRow(
        _ values: UnsafePointer<Float>, into codes: UnsafeMutablePointer<Int8>, scratch: UnsafeMutableBufferPointer<Int8>
    ) -> Float {
        guard packInt4 else {
            return SymmetricQuantization.quantizeGroup(values, count: headDim, levels: levels, into: codes)
        }
        let scale = SymmetricQuantization.quantizeGroup(values, count: headDim, levels: levels, into: scratch.baseAddress!)
        for i in 0..<headDim / 2 {
            let low = UInt8(bitPattern: scratch[2 * i]) & 0x0F
            let high = UInt8(bitPattern: scratch[2 * i + 1]) & 0x0F
            codes[i] = Int8(bitPattern: low | high << 4)
        }
        return scale
    }
}
