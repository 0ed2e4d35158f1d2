import Foundation
@testable import IntFlashAttention

/// A direct, scalar simulation of each scheme of docs/SCHEMES.md, written from the text
/// independently of the tiled kernels: per row, per P block (keys 0–31, 32–127, then blocks of
/// 128 for `int8` and `int4`; blocks of 64 for the others), in fp32 with Foundation's exp2.
/// Inputs are fp32 BHND; the result is the BHND output.
enum SchemeSimulation {
    static let log2e = Float(1.4426950408889634)

    static func run(_ method: AttentionMethod, _ p: AttentionProblem, q: [Float], k: [Float], v: [Float]) -> [Float] {
        let d = p.headDim, nq = p.queryLength, nk = p.keyLength
        var out = [Float](repeating: 0, count: p.queryElementCount)
        let smL = p.softmaxScale * log2e
        for b in 0..<p.batch {
            for h in 0..<p.heads {
                let s = b * p.kvHeads + p.kvHead(forQueryHead: h)
                let bh = b * p.heads + h
                let qh = Array(q[bh * nq * d..<(bh + 1) * nq * d])
                let kh = Array(k[s * nk * d..<(s + 1) * nk * d])
                let vh = Array(v[s * nk * d..<(s + 1) * nk * d])
                let o: [Float]
                switch method {
                case .int8, .int8Paper, .int4: o = integer(method, p, qh, kh, vh, smL)
                default: o = floating(method, p, qh, kh, vh, smL)
                }
                out.replaceSubrange(bh * nq * d..<(bh + 1) * nq * d, with: o)
            }
        }
        return out
    }

    /// One head of `int8`, `int8-paper` or `int4`.
    static func integer(_ method: AttentionMethod, _ p: AttentionProblem, _ q: [Float], _ k: [Float], _ v: [Float], _ smL: Float) -> [Float] {
        let d = p.headDim, nq = p.queryLength, nk = p.keyLength
        let levels = method == .int4 ? 7 : 127
        let (qc, sq) = SymmetricQuantization.quantizeRows(q, rowLength: d, levels: levels)
        let keys = method == .int8Paper ? k : KeySmoothing.smoothed(k, tokens: nk, channels: d)
        // K scales per key: the key's own (int8-paper, int4) or its group's of 8 (int8).
        var (kc, sk) = SymmetricQuantization.quantizeRows(keys, rowLength: d, levels: levels)
        if method == .int8 {
            for span in stride(from: 0, to: nk, by: 32) {
                for quad in 0..<4 {
                    let group = (0..<8).map { span + 8 * ($0 / 2) + 2 * quad + $0 % 2 }.filter { $0 < nk }
                    let amax = group.map { j in (0..<d).map { abs(keys[j * d + $0]) }.max()! }.max() ?? 0
                    let inverse = amax > 0 ? Float(levels) / amax : 0
                    for j in group {
                        sk[j] = amax > 0 ? amax / Float(levels) : 0
                        for c in 0..<d {
                            kc[j * d + c] = Int8(max(-127, min(127, (keys[j * d + c] * inverse).rounded(.toNearestOrEven))))
                        }
                    }
                }
            }
        }
        // V codes row-major and a per-channel multiplier.
        var vc = [Int8](repeating: 0, count: nk * d)
        var vScale = [Float](repeating: 0, count: d)
        if method == .int8Paper {
            let (codes, scale) = SymmetricQuantization.quantizeTensor(v, levels: 127)
            vc = codes
            vScale = [Float](repeating: scale / 127, count: d)
        } else {
            let (codes, scales) = SymmetricQuantization.quantizeChannelsTransposed(v, tokens: nk, channels: d, paddedTokens: nk, levels: 127)
            for t in 0..<nk { for c in 0..<d { vc[t * d + c] = codes[c * nk + t] } }
            vScale = scales
        }
        // P blocks.
        let bounds = method == .int8Paper
            ? Array(stride(from: 0, to: nk, by: 64)) + [nk]
            : ([0, 32] + Array(stride(from: 128, to: nk, by: 128))).filter { $0 < nk } + [nk]
        var out = [Float](repeating: 0, count: nq * d)
        for i in 0..<nq {
            let qs = sq[i] * smL
            let visible = p.visibleKeys(row: i)
            var m = -Float.infinity, l: Float = 0
            var acc = [Float](repeating: 0, count: d)
            for (j0, j1) in zip(bounds, bounds.dropFirst()) {
                let keysInBlock = j0..<j1
                var dots = [Int](repeating: 0, count: keysInBlock.count)
                var scores = [Float](repeating: -.infinity, count: keysInBlock.count)
                for j in keysInBlock where j < visible {
                    var dot = 0
                    for c in 0..<d { dot += Int(qc[i * d + c]) * Int(kc[j * d + c]) }
                    dots[j - j0] = dot
                    scores[j - j0] = method == .int8Paper ? (Float(dot) * qs) * sk[j] : Float(dot) * (qs * sk[j])
                }
                let blockMax = scores.max()!
                if blockMax == -.infinity { continue }
                var codes = [Int](repeating: 0, count: scores.count)
                let mNew: Float, alpha: Float
                var w: Float = 1
                if method == .int8Paper {
                    mNew = max(m, blockMax)
                    alpha = exp2(m - mNew)
                    var pSum: Float = 0
                    for (j, score) in scores.enumerated() {
                        let pj = exp2(score - mNew)
                        pSum += pj
                        codes[j] = Int((127 * pj).rounded(.toNearestOrEven))
                    }
                    l = l * alpha + pSum
                } else {
                    // Codes against t, a hair above the block maximum (so that none exceeds 255),
                    // from p rounded to fp16.
                    let t = fusedMultiplyAdd(abs(blockMax), 0x1p-22, blockMax)
                    mNew = max(m, t)
                    alpha = exp2(m - mNew)
                    for (j, score) in scores.enumerated() where score > -.infinity {
                        let exponent = fusedMultiplyAdd(Float(dots[j]), qs * sk[j0 + j], -t)
                        let probability = Float(Float16(exp2(exponent)))
                        codes[j] = Int((255 * probability).rounded(.toNearestOrEven))
                    }
                    w = exp2(t - mNew) * (1 / 255)
                    l = l * alpha + w * Float(codes.reduce(0, +))
                }
                for c in 0..<d {
                    var dot = 0
                    for (j, code) in codes.enumerated() { dot += code * Int(vc[(j0 + j) * d + c]) }
                    acc[c] = acc[c] * alpha + w * Float(dot)
                }
                m = mNew
            }
            for c in 0..<d { out[i * d + c] = l > 0 ? acc[c] * vScale[c] / l : 0 }
        }
        return out
    }

    /// a · b + c with one rounding.
    static func fusedMultiplyAdd(_ a: Float, _ b: Float, _ c: Float) -> Float { c.addingProduct(a, b) }

    /// One head of `fp32`, `fp16`, `fp8-e4m3` or `fp8-e5m2`.
    static func floating(_ method: AttentionMethod, _ p: AttentionProblem, _ q: [Float], _ k: [Float], _ v: [Float], _ smL: Float) -> [Float] {
        let d = p.headDim, nq = p.queryLength, nk = p.keyLength
        var qv = q, kv = k, vv = v
        var qScale = smL, kScale: Float = 1, vScale: Float = 1
        var roundP: (Float) -> Float = { $0 }
        switch method {
        case .fp16:
            let half = { (x: Float) in Float(Float16(x)) }
            qv = q.map(half); kv = k.map(half); vv = v.map(half)
            roundP = half
        case .fp8E4M3, .fp8E5M2:
            let format: FP8Format = method == .fp8E4M3 ? .e4m3 : .e5m2
            func quantize(_ x: [Float]) -> ([Float], Float) {
                let amax = x.map(abs).max()!
                guard amax > 0 else { return (x.map { _ in 0 }, 0) }
                let inverse = format.maxFinite / amax
                return (x.map { format.decode(format.encode($0 * inverse)) }, amax / format.maxFinite)
            }
            var sQ: Float
            (qv, sQ) = quantize(q)
            (kv, kScale) = quantize(k)
            (vv, vScale) = quantize(v)
            qScale = sQ * smL
            roundP = { format.decode(format.encode($0)) }
        default: break
        }
        var out = [Float](repeating: 0, count: nq * d)
        for i in 0..<nq {
            let visible = p.visibleKeys(row: i)
            var m = -Float.infinity, l: Float = 0
            var acc = [Float](repeating: 0, count: d)
            for j0 in stride(from: 0, to: nk, by: 64) {
                let keysInBlock = j0..<min(j0 + 64, nk)
                var scores = [Float](repeating: -.infinity, count: keysInBlock.count)
                for j in keysInBlock where j < visible {
                    var dot: Float = 0
                    for c in 0..<d { dot = dot.addingProduct(qv[i * d + c], kv[j * d + c]) }
                    scores[j - j0] = (dot * qScale) * kScale
                }
                let blockMax = scores.max()!
                if blockMax == -.infinity { continue }
                let mNew = max(m, blockMax)
                let alpha = exp2(m - mNew)
                let probabilities = scores.map { exp2($0 - mNew) }
                l = l * alpha + probabilities.reduce(0, +)
                let rounded = probabilities.map(roundP)  // once per key, not once per channel
                for c in 0..<d {
                    var dot: Float = 0
                    for (j, pj) in rounded.enumerated() { dot = dot.addingProduct(pj, vv[(j0 + j) * d + c]) }
                    acc[c] = acc[c] * alpha + dot
                }
                m = mNew
            }
            for c in 0..<d { out[i * d + c] = l > 0 ? acc[c] * vScale / l : 0 }
        }
        return out
    }
}
