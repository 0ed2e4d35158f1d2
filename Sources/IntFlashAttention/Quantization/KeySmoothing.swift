/// K smoothing (docs/SCHEMES.md, `int8` and `int4`): subtract each channel's mean over the
/// tokens of one (batch, kv head) before quantizing K. Softmax ignores a constant added to a
/// row of scores and `q · mean` is constant along a row, so attention is unchanged in exact
/// arithmetic while channel outliers stop eating the quantization range.
public enum KeySmoothing {
    /// `mean[c] = Float(Σ_t Double(K[t][c]) / Double(tokens))` for a [tokens, channels] matrix.
    public static func channelMeans(_ keys: [Float], tokens: Int, channels: Int) -> [Float] {
        keys.withUnsafeBufferPointer { channelMeans($0.baseAddress!, tokens: tokens, channels: channels) }
    }

    static func channelMeans(_ keys: UnsafePointer<Float>, tokens: Int, channels: Int) -> [Float] {
        var sums = [Double](repeating: 0, count: channels)
        for t in 0..<tokens {
            let row = keys + t * channels
            for c in 0..<channels { sums[c] += Double(row[c]) }
        }
        return sums.map { Float($0 / Double(tokens)) }
    }

    /// `K'[t][c] = K[t][c] − mean[c]` in fp32.
    public static func smoothed(_ keys: [Float], tokens: Int, channels: Int) -> [Float] {
        let means = channelMeans(keys, tokens: tokens, channels: channels)
        var result = keys
        for t in 0..<tokens {
            for c in 0..<channels { result[t * channels + c] -= means[c] }
        }
        return result
    }

    /// What smoothing takes from row i's log-sum-exp: `scale · (q_i · mean)` per query row
    /// ([B, H, Nq]), with the mean of each (batch, kv head)'s keys. Adding it back gives the
    /// exact log-sum-exp (the GPU's `restore_lse.cu` does the same).
    static func logSumExpShift(problem p: AttentionProblem, q: [Float], k: [Float]) -> [Float] {
        let d = p.headDim, nq = p.queryLength, nk = p.keyLength
        var shift = [Float](repeating: 0, count: p.batch * p.heads * nq)
        k.withUnsafeBufferPointer { keys in
            for b in 0..<p.batch {
                for kvHead in 0..<p.kvHeads {
                    let mean = channelMeans(keys.baseAddress! + (b * p.kvHeads + kvHead) * nk * d, tokens: nk, channels: d)
                    for head in kvHead * p.groupSize..<(kvHead + 1) * p.groupSize {
                        let bh = b * p.heads + head
                        for row in 0..<nq {
                            let query = (bh * nq + row) * d
                            var dot: Float = 0
                            for c in 0..<d { dot += q[query + c] * mean[c] }
                            shift[bh * nq + row] = p.softmaxScale * dot
                        }
                    }
                }
            }
        }
        return shift
    }
}
