import Foundation
@testable import IntFlashAttention

extension SplitMix64 {
    /// A standard normal draw.
    mutating func normal() -> Float { nextNormal() }

    mutating func normals(_ count: Int, scale: Float = 1) -> [Float] {
        (0..<count).map { _ in nextNormal() * scale }
    }
}

/// Random Q, K, V for a problem, N(0, 1).
func randomInputs(_ p: AttentionProblem, seed: UInt64) -> (q: [Float], k: [Float], v: [Float]) {
    var g = SplitMix64(seed: seed)
    return (g.normals(p.queryElementCount), g.normals(p.keyElementCount), g.normals(p.keyElementCount))
}

/// Σ|a − b| / Σ|b| (NaN when `a` holds a NaN).
func relativeL1(_ a: [Float], _ b: [Double]) -> Double {
    ErrorMetrics(output: a, reference: b).relativeL1
}

func relativeL1(_ a: [Float], _ b: [Float]) -> Double { relativeL1(a, b.map(Double.init)) }

import CIntFlashAttentionCPU
func intfa_exp2_for_tests(_ x: Float) -> Float { intfa_exp2(x) }
