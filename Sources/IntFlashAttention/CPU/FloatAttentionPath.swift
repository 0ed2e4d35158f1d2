import CIntFlashAttentionCPU

/// The floating-point methods on the CPU (`fp32`, `fp16`, `fp8-e4m3`, `fp8-e5m2`): inputs
/// rounded (or FP8-quantized) first, then fp32 FMA GEMMs with P rounded per method.
enum FloatAttentionPath {
    static func run(
        _ method: AttentionMethod, problem p: AttentionProblem, q: [Float], k: [Float], v: [Float], options: TileRunOptions
    ) throws(AttentionError) -> CPUAttentionOutput {
        let scoreScale = p.softmaxScale * Float(1.4426950408889634)
        let slicesQ = p.batch * p.heads, slicesKV = p.batch * p.kvHeads
        var inputs: (q: [Float], k: [Float], v: [Float])
        var scales: (q: [Float], k: [Float], v: [Float])
        let rounding: intfa_p_rounding
        switch method {
        case .fp32:
            inputs = (q, k, v)
            scales = ([Float](repeating: scoreScale, count: slicesQ), [Float](repeating: 1, count: slicesKV),
                      [Float](repeating: 1, count: slicesKV))
            rounding = INTFA_P_FP32
        case .fp16:
            let toHalf = { (x: [Float]) in x.map { Float(Float16($0)) } }
            inputs = (toHalf(q), toHalf(k), toHalf(v))
            scales = ([Float](repeating: scoreScale, count: slicesQ), [Float](repeating: 1, count: slicesKV),
                      [Float](repeating: 1, count: slicesKV))
            rounding = INTFA_P_FP16
        case .fp8E4M3, .fp8E5M2:
            let format: FP8Format = method == .fp8E4M3 ? .e4m3 : .e5m2
            let fp8 = try FP8AttentionInputs.quantize(format: format, problem: p, q: q, k: k, v: v)
            let table = format.decodeTable
            let decode = { (codes: [UInt8]) in codes.map { table[Int($0)] } }
            inputs = (decode(fp8.queryCodes), decode(fp8.keyCodes), decode(fp8.valueCodes))
            scales = (fp8.queryScales, fp8.keyScales, fp8.valueScales)
            rounding = format == .e4m3 ? INTFA_P_FP8_E4M3 : INTFA_P_FP8_E5M2
        case .int8, .int8Paper, .int4:
            throw .unsupportedMethod(method: method.rawValue, backend: "cpu-float", reason: "an integer method")
        }

        let schedule = TileSchedule(problem: p, options: options)
        let dp = schedule.paddedDim
        let query = paddedRows(inputs.q, width: p.headDim, paddedWidth: dp)
        let operands = FloatKeyValueOperands(keys: inputs.k, values: inputs.v, problem: p, paddedDim: dp, threads: options.threads)
        let blocks = operands.keyBlocks
        return query.withUnsafeBufferPointer { queryBuffer in
            operands.keys.withUnsafeBufferPointer { keyBuffer in
                operands.values.withUnsafeBufferPointer { valueBuffer in
                    schedule.run { tile in
                        let row = tile.batchHead * p.queryLength + tile.firstRow
                        var descriptor = intfa_float_tile(
                            rows: tile.rows, p_rounding: rounding,
                            q: queryBuffer.baseAddress! + row * dp, q_scale: scales.q[tile.batchHead],
                            k_scale: scales.k[tile.kvSlice],
                            k_packed: keyBuffer.baseAddress! + tile.kvSlice * blocks * 64 * dp,
                            v: valueBuffer.baseAddress! + tile.kvSlice * blocks * 64 * dp,
                            v_scale: scales.v[tile.kvSlice])
                        intfa_float_tile_run(options.isa.cValue, &descriptor)
                    }
                }
            }
        }
    }
}

/// K transposed per key block ([paddedDim][64 keys]) and V as [padded keys][paddedDim], zero
/// padded, per (batch, kv head): the layouts of the C floating-point tile.
struct FloatKeyValueOperands {
    var keys: [Float]
    var values: [Float]
    var keyBlocks: Int

    init(keys source: [Float], values sourceValues: [Float], problem p: AttentionProblem, paddedDim dp: Int, threads: Int?) {
        let d = p.headDim, n = p.keyLength
        let blocks = (n + 63) / 64
        let slices = p.batch * p.kvHeads
        keyBlocks = blocks
        var keys = [Float](repeating: 0, count: slices * blocks * 64 * dp)
        var values = [Float](repeating: 0, count: slices * blocks * 64 * dp)
        source.withUnsafeBufferPointer { keySource in
            sourceValues.withUnsafeBufferPointer { valueSource in
                keys.withUnsafeMutableBufferPointer { keyBuffer in
                    values.withUnsafeMutableBufferPointer { valueBuffer in
                        let keyTarget = SharedMutablePointer(base: keyBuffer.baseAddress!)
                        let valueTarget = SharedMutablePointer(base: valueBuffer.baseAddress!)
                        ParallelWork.forEach(count: slices, threads: threads) { slice in
                            let sliceKeys = keyTarget.base + slice * blocks * 64 * dp
                            let sliceValues = valueTarget.base + slice * blocks * 64 * dp
                            for t in 0..<n {
                                let keyRow = keySource.baseAddress! + (slice * n + t) * d
                                let valueRow = valueSource.baseAddress! + (slice * n + t) * d
                                let block = sliceKeys + (t / 64) * 64 * dp + t % 64
                                for c in 0..<d {
                                    block[c * 64] = keyRow[c]
                                    sliceValues[t * dp + c] = valueRow[c]
                                }
                            }
                        }
                    }
                }
            }
        }
        self.keys = keys
        self.values = values
    }
}
