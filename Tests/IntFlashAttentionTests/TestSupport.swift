import Foundation
@testable import IntFlashAttention

/// SplitMix64: a small seeded generator so every test draws fresh, reproducible inputs.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A standard normal draw (Box–Muller).
    mutating func normal() -> Float {
        let u1 = Double.random(in: Double.ulpOfOne..<1, using: &self)
        let u2 = Double.random(in: 0..<1, using: &self)
        return Float((-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2))
    }

    mutating func normals(_ count: Int, scale: Float = 1) -> [Float] {
        (0..<count).map { _ in normal() * scale }
    }
}

/// Random Q, K, V for a problem, N(0, 1).
func randomInputs(_ p: AttentionProblem, seed: UInt64) -> (q: [Float], k: [Float], v: [Float]) {
    var g = SplitMix64(seed: seed)
    return (g.normals(p.queryElementCount), g.normals(p.keyElementCount), g.normals(p.keyElementCount))
}

/// Σ|a − b| / Σ|b|.
func relativeL1(_ a: [Float], _ b: [Double]) -> Double {
    precondition(a.count == b.count)
    var num = 0.0, den = 0.0
    for i in a.indices {
        num += abs(Double(a[i]) - b[i])
        den += abs(b[i])
    }
    return den == 0 ? num : num / den
}

func relativeL1(_ a: [Float], _ b: [Float]) -> Double { relativeL1(a, b.map(Double.init)) }

import CIntFlashAttentionCPU
func intfa_exp2_for_tests(_ x: Float) -> Float { intfa_exp2(x) }
