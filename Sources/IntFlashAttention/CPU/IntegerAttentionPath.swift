import CIntFlashAttentionCPU

/// The `int8`, `int8-paper` and `int4` methods on the CPU: the GPU-layout quantized inputs
/// repacked for the C tiles (Q·Kᵀ and P·V both as u8·s8 int32 dot products of four bytes).
enum IntegerAttentionPath {
    static func run(_ quantized: QuantizedAttentionInputs, options: TileRunOptions) -> CPUAttentionOutput {
        let p = quantized.problem
        let schedule = TileSchedule(problem: p, options: options)
        let dp = schedule.paddedDim
        let operands = IntegerOperands(quantized, paddedDim: dp, threads: options.threads)
        let keyBlocks = operands.keyBlocks
        let scheme = quantized.method == .int8Paper ? INTFA_INT_SCHEME_PAPER : INTFA_INT_SCHEME_INT8
        return operands.query.withUnsafeBufferPointer { query in
            quantized.queryScales.withUnsafeBufferPointer { queryScales in
                operands.keys.withUnsafeBufferPointer { keys in
                    operands.keyScales.withUnsafeBufferPointer { keyScales in
                        operands.values.withUnsafeBufferPointer { values in
                            operands.valueScales.withUnsafeBufferPointer { valueScales in
                                schedule.run { tile in
                                    let row = tile.batchHead * p.queryLength + tile.firstRow
                                    let slice = tile.kvSlice
                                    var descriptor = intfa_int_tile(
                                        rows: tile.rows, scheme: scheme,
                                        q: query.baseAddress! + row * dp,
                                        q_scale: queryScales.baseAddress! + row,
                                        k_packed: keys.baseAddress! + slice * keyBlocks * 64 * dp,
                                        k_scale: keyScales.baseAddress! + slice * keyBlocks * 64,
                                        v_packed: values.baseAddress! + slice * keyBlocks * 64 * dp,
                                        v_scale: valueScales.baseAddress! + slice * dp)
                                    intfa_int_tile_run(options.isa.cValue, &descriptor)
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Quantized Q, K, V in the layouts the C integer tile reads (see intfa_cpu.h).
struct IntegerOperands {
    /// Signed Q codes, [B·H·Nq][paddedDim].
    var query: [Int8]
    /// Per (batch, kv head), per key block: [paddedDim/4][64 keys][4 channels] of K + 128.
    var keys: [UInt8]
    /// Per (batch, kv head): one scale per padded key (its group's for `int8`; 0 past Nk).
    var keyScales: [Float]
    /// Per (batch, kv head), per key block: [16 key quads][paddedDim][4 keys] signed V codes.
    var values: [Int8]
    /// Per (batch, kv head): the final multiplier of each padded channel.
    var valueScales: [Float]
    var keyBlocks: Int

    init(_ quantized: QuantizedAttentionInputs, paddedDim dp: Int, threads: Int?) {
        let p = quantized.problem
        let d = p.headDim, n = p.keyLength
        let nPad = quantized.paddedKeyLength
        let blocks = nPad / 64
        let slices = p.batch * p.kvHeads
        let int4 = quantized.method == .int4
        keyBlocks = blocks

        if int4 {
            let rows = p.batch * p.heads * p.queryLength
            var query = [Int8](repeating: 0, count: rows * dp)
            for row in 0..<rows {
                for c in 0..<d {
                    query[row * dp + c] = Int4Packing.element(quantized.queryCodes, at: row * d + c)
                }
            }
            self.query = query
        } else {
            query = paddedRows(quantized.queryCodes, width: d, paddedWidth: dp)
        }

        var keys = [UInt8](repeating: 128, count: slices * blocks * 64 * dp)
        var keyScales = [Float](repeating: 0, count: slices * nPad)
        var values = [Int8](repeating: 0, count: slices * blocks * 64 * dp)
        var valueScales = [Float](repeating: 0, count: slices * dp)
        let perChannel = quantized.valueScalesPerChannel
        let keyCodes = int4 ? Int4Packing.unpack(quantized.keyCodes, count: slices * n * d) : quantized.keyCodes
        keyCodes.withUnsafeBufferPointer { keyCodes in
            quantized.valueCodesTransposed.withUnsafeBufferPointer { transposed in
                keys.withUnsafeMutableBufferPointer { keyBuffer in
                    values.withUnsafeMutableBufferPointer { valueBuffer in
                        let keyTarget = SharedMutablePointer(base: keyBuffer.baseAddress!)
                        let valueTarget = SharedMutablePointer(base: valueBuffer.baseAddress!)
                        ParallelWork.forEach(count: slices, threads: threads) { slice in
                            intfa_pack_keys(
                                keyCodes.baseAddress! + slice * n * d, n, Int32(d), Int32(dp),
                                keyTarget.base + slice * blocks * 64 * dp)
                            intfa_pack_values(
                                transposed.baseAddress! + slice * d * nPad, Int32(d), nPad, Int32(dp),
                                valueTarget.base + slice * blocks * 64 * dp)
                        }
                    }
                }
            }
        }
        for slice in 0..<slices {
            if quantized.keyScalesPerGroup {
                for t in 0..<n {
                    keyScales[slice * nPad + t] = quantized.keyScales[slice * (nPad / 8) + KeyGroups.scaleIndex(ofKey: t)]
                }
            } else {
                for t in 0..<n { keyScales[slice * nPad + t] = quantized.keyScales[slice * n + t] }
            }
            for c in 0..<d {
                // int8-paper: O = acc · (sV / 127) / l, so the multiplier is sV / 127.
                valueScales[slice * dp + c] = perChannel
                    ? quantized.valueScales[slice * d + c]
                    : quantized.valueScales[slice] / Float(SymmetricQuantization.int8Levels)
            }
        }
        self.keys = keys
        self.keyScales = keyScales
        self.values = values
        self.valueScales = valueScales
    }
}
