import CIntFlashAttentionCPU

/// Splits a problem into tiles of (batch, query head, block of query rows), runs them on
/// worker threads and collects the output and log-sum-exp.
struct TileSchedule {
    let problem: AttentionProblem
    let options: TileRunOptions
    /// Head dim rounded up to a multiple of 16: the width of every packed operand.
    let paddedDim: Int

    init(problem: AttentionProblem, options: TileRunOptions) {
        self.problem = problem
        self.options = options
        paddedDim = (problem.headDim + 15) / 16 * 16
    }

    /// One tile: which rows, which kv slice, and the C row descriptor with its output pointers.
    struct Tile {
        var batchHead: Int
        var kvSlice: Int
        var firstRow: Int
        var rows: intfa_tile_rows
    }

    /// Runs `body` for every tile and returns the gathered output.
    func run(_ body: (Tile) -> Void) -> CPUAttentionOutput {
        let p = problem
        let blocksPerHead = (p.queryLength + CPUAttention.queryBlock - 1) / CPUAttention.queryBlock
        var output = [Float](repeating: 0, count: p.queryElementCount)
        var logSumExp = [Float](repeating: 0, count: options.computeLogSumExp ? p.batch * p.heads * p.queryLength : 0)
        output.withUnsafeMutableBufferPointer { outputBuffer in
            logSumExp.withUnsafeMutableBufferPointer { lseBuffer in
                let out = SharedMutablePointer(base: outputBuffer.baseAddress!)
                // Not the buffer of an empty array: its base address is the runtime's shared
                // empty-array storage, which the kernels would overwrite.
                let lse = options.computeLogSumExp ? lseBuffer.baseAddress.map { SharedMutablePointer(base: $0) } : nil
                ParallelWork.forEach(count: p.batch * p.heads * blocksPerHead, threads: options.threads) { item in
                    let batchHead = item / blocksPerHead
                    let firstRow = (item % blocksPerHead) * CPUAttention.queryBlock
                    let rows = min(CPUAttention.queryBlock, p.queryLength - firstRow)
                    let b = batchHead / p.heads, h = batchHead % p.heads
                    let rowIndex = batchHead * p.queryLength + firstRow
                    let descriptor = intfa_tile_rows(
                        rows: Int32(rows), padded_dim: Int32(paddedDim), head_dim: Int32(p.headDim),
                        key_length: Int32(p.keyLength),
                        first_visible: Int32(firstRow + p.keyLength - p.queryLength + 1),
                        causal: p.causal ? 1 : 0,
                        output: out.base + rowIndex * p.headDim, output_row_stride: p.headDim,
                        log_sum_exp: lse.map { $0.base + rowIndex })
                    body(Tile(
                        batchHead: batchHead, kvSlice: b * p.kvHeads + p.kvHead(forQueryHead: h),
                        firstRow: firstRow, rows: descriptor))
                }
            }
        }
        return CPUAttentionOutput(output: output, logSumExp: logSumExp)
    }
}

/// Copies rows of `width` elements into rows of `paddedWidth` (zero filled).
func paddedRows<T: Numeric>(_ values: [T], width: Int, paddedWidth: Int) -> [T] {
    if width == paddedWidth { return values }
    let rows = values.count / width
    var result = [T](repeating: 0, count: rows * paddedWidth)
    for row in 0..<rows {
        for c in 0..<width { result[row * paddedWidth + c] = values[row * width + c] }
    }
    return result
}
