import Foundation
import Testing
@testable import IntFlashAttention

@Suite struct CPUAttentionTests {
    static let quantizedMethods: [AttentionMethod] = [.int8, .int8Paper, .int4, .fp8E4M3, .fp8E5M2, .fp16]

    /// Each scheme against its own scalar simulation: only exp2 differs, which can flip the
    /// rounding of an occasional P code.
    @Test(arguments: quantizedMethods)
    func schemeMatchesItsSimulation(method: AttentionMethod) throws {
        for (index, p) in try [
            AttentionProblem(batch: 1, heads: 2, queryLength: 70, keyLength: 200, headDim: 64),
            AttentionProblem(batch: 2, heads: 2, kvHeads: 1, queryLength: 90, keyLength: 65, headDim: 40, causal: true),
        ].enumerated() {
            let (q, k, v) = randomInputs(p, seed: 100 + UInt64(index) &* 31 &+ UInt64(method.rawValue.hashValue & 0xFF))
            let tiled = try CPUAttention.run(method, problem: p, q: q, k: k, v: v).output
            let simulated = SchemeSimulation.run(method, p, q: q, k: k, v: v)
            let error = relativeL1(tiled, simulated)
            #expect(error <= 1e-5, "\(method) \(p): rel L1 \(error)")
        }
    }

    /// Without a log-sum-exp the kernels must get no LSE pointer: an empty array's buffer is
    /// the runtime's shared empty storage, and writing there broke every later empty array
    /// (and the dictionaries beside it) in the process.
    @Test(arguments: [AttentionMethod.fp32, .int8])
    func runWithoutLogSumExpWritesNothingElse(method: AttentionMethod) throws {
        let p = try AttentionProblem(batch: 1, heads: 4, kvHeads: 2, queryLength: 100, keyLength: 100, headDim: 64)
        let (q, k, v) = randomInputs(p, seed: 77)
        let with = try CPUAttention.run(method, problem: p, q: q, k: k, v: v)
        let without = try CPUAttention.run(method, problem: p, q: q, k: k, v: v, isa: .selected, computeLogSumExp: false)
        #expect(without.logSumExp.isEmpty)
        #expect(without.output == with.output)
        let empty: [Float] = []
        #expect(empty.count == 0 && empty.first == nil)
        var table: [String: Int] = [:]
        for index in 0..<100 { table["key \(index)"] = index }
        #expect(table.count == 100 && table["key 42"] == 42)
    }

    @Test(arguments: [(1, 1), (63, 65), (65, 63), (127, 1), (1, 1000), (100, 1000), (1000, 127)])
    func fp32MatchesFloat64OnOddShapes(nq: Int, nk: Int) throws {
        for causal in [false, true] {
            let p = try AttentionProblem(batch: 1, heads: 2, queryLength: nq, keyLength: nk, headDim: 24, causal: causal)
            let (q, k, v) = randomInputs(p, seed: UInt64(nq * 7919 + nk * 13 + (causal ? 1 : 0)))
            let reference = try CPUAttention.reference(p, q: q, k: k, v: v)
            let tiled = try CPUAttention.run(.fp32, problem: p, q: q, k: k, v: v)
            #expect(relativeL1(tiled.output, reference) <= 1e-5, "\(p)")
            // log-sum-exp against float64, where the row sees any key.
            for row in 0..<(p.heads * nq) where p.visibleKeys(row: row % nq) > 0 {
                let expected = Self.logSumExp(p, q: q, k: k, head: row / nq, row: row % nq)
                #expect(abs(Double(tiled.logSumExp[row]) - expected) <= 1e-4 * max(1, abs(expected)))
            }
        }
    }

    /// Every quantized method's log-sum-exp is the exact one up to its quantization error:
    /// `int8` and `int4` add back the shift that smoothing K took from every score of a row.
    /// K gets a channel offset large against the scores, so a missing shift (about 1 here)
    /// would show; FP8 and INT4 have per-tensor or 4-bit error of their own.
    @Test(arguments: [AttentionMethod.int8, .int4, .int8Paper, .fp8E4M3, .fp16])
    func logSumExpIsExact(method: AttentionMethod) throws {
        let p = try AttentionProblem(batch: 2, heads: 4, kvHeads: 2, queryLength: 70, keyLength: 130, headDim: 32, causal: true)
        var (q, k, v) = randomInputs(p, seed: 0x15E)
        for index in k.indices where index % p.headDim < 4 { k[index] += 3 }
        let result = try CPUAttention.run(method, problem: p, q: q, k: k, v: v)
        let tolerance = method == .int4 || method == .fp8E4M3 ? 0.3 : 0.05
        for row in 0..<(p.batch * p.heads * p.queryLength) {
            let rowInHead = row % p.queryLength, bh = row / p.queryLength
            let batch = bh / p.heads, head = bh % p.heads
            let headQ = Array(q[(batch * p.heads * p.queryLength * p.headDim)...].prefix(p.heads * p.queryLength * p.headDim))
            let headK = Array(k[(batch * p.kvHeads * p.keyLength * p.headDim)...].prefix(p.kvHeads * p.keyLength * p.headDim))
            let expected = Self.logSumExp(p, q: headQ, k: headK, head: head, row: rowInHead)
            #expect(abs(Double(result.logSumExp[row]) - expected) <= tolerance, "\(method) row \(row)")
        }
    }

    static func logSumExp(_ p: AttentionProblem, q: [Float], k: [Float], head: Int, row: Int) -> Double {
        let d = p.headDim
        let kvHead = p.kvHead(forQueryHead: head)
        let scores = (0..<p.visibleKeys(row: row)).map { j in
            (0..<d).reduce(0.0) { $0 + Double(q[(head * p.queryLength + row) * d + $1]) * Double(k[(kvHead * p.keyLength + j) * d + $1]) }
                * Double(p.softmaxScale)
        }
        let m = scores.max()!
        return m + log(scores.reduce(0) { $0 + exp($1 - m) })
    }

    @Test func causalRowsThatSeeNoKeyAreZero() throws {
        let p = try AttentionProblem(heads: 1, queryLength: 100, keyLength: 30, headDim: 16, causal: true)
        let (q, k, v) = randomInputs(p, seed: 77)
        let reference = try CPUAttention.reference(p, q: q, k: k, v: v)
        for method in AttentionMethod.allCases {
            let result = try CPUAttention.run(method, problem: p, q: q, k: k, v: v)
            // Rows 0..<70 see no key (bottom-right alignment).
            #expect(result.output[0..<(70 * 16)].allSatisfy { $0 == 0 }, "\(method)")
            #expect(result.logSumExp[0..<70].allSatisfy { $0 == -.infinity }, "\(method)")
            #expect(result.output[(70 * 16)...].contains { $0 != 0 })
            #expect(!result.output.contains { $0.isNaN })
        }
        #expect(reference[0..<(70 * 16)].allSatisfy { $0 == 0 })
    }

    @Test func groupedAndMultiQueryHeadsReadTheirKeyValueHead() throws {
        for kvHeads in [1, 2] {
            let p = try AttentionProblem(batch: 2, heads: 4, kvHeads: kvHeads, queryLength: 33, keyLength: 80, headDim: 32)
            let (q, k, v) = randomInputs(p, seed: 500 + UInt64(kvHeads))
            let reference = try CPUAttention.reference(p, q: q, k: k, v: v)
            // The oracle itself, against a per-head expansion of K and V to H heads.
            let full = try AttentionProblem(batch: 2, heads: 4, queryLength: 33, keyLength: 80, headDim: 32)
            let expand = { (x: [Float]) -> [Float] in
                (0..<2).flatMap { b in (0..<4).flatMap { h -> ArraySlice<Float> in
                    let s = b * kvHeads + p.kvHead(forQueryHead: h)
                    return x[s * 80 * 32..<(s + 1) * 80 * 32]
                } }
            }
            #expect(try CPUAttention.reference(full, q: q, k: expand(k), v: expand(v)) == reference)
            let tiled = try CPUAttention.run(.fp32, problem: p, q: q, k: k, v: v).output
            #expect(relativeL1(tiled, reference) <= 1e-5)
        }
    }

    @Test func layoutsGiveTheSameResult() throws {
        let p = try AttentionProblem(batch: 2, heads: 3, queryLength: 21, keyLength: 50, headDim: 16)
        let (q, k, v) = randomInputs(p, seed: 9)
        let bhnd = try CPUAttention.run(.int8, problem: p,
            q: AttentionTensor(converting: q, to: .float32, batch: 2, heads: 3, tokens: 21, headDim: 16),
            k: AttentionTensor(converting: k, to: .float32, batch: 2, heads: 3, tokens: 50, headDim: 16),
            v: AttentionTensor(converting: v, to: .float32, batch: 2, heads: 3, tokens: 50, headDim: 16))
        let toBNHD = { (x: [Float], n: Int) in TensorLayout.bhnd.reorder(x, to: .bnhd, batch: 2, heads: 3, tokens: n, headDim: 16) }
        let bnhd = try CPUAttention.run(.int8, problem: p,
            q: AttentionTensor(converting: toBNHD(q, 21), to: .float32, batch: 2, heads: 3, tokens: 21, headDim: 16, layout: .bnhd),
            k: AttentionTensor(converting: toBNHD(k, 50), to: .float32, batch: 2, heads: 3, tokens: 50, headDim: 16, layout: .bnhd),
            v: AttentionTensor(converting: toBNHD(v, 50), to: .float32, batch: 2, heads: 3, tokens: 50, headDim: 16, layout: .bnhd))
        #expect(bnhd.layout == .bnhd && bnhd.elementType == .float32)
        #expect(bnhd.floatsBHND() == bhnd.floats())
        #expect(bhnd.floats() == (try CPUAttention.run(.int8, problem: p, q: q, k: k, v: v).output))
        // Half-precision inputs come back in half precision.
        let half = try CPUAttention.run(.fp32, problem: p,
            q: AttentionTensor(converting: q, to: .float16, batch: 2, heads: 3, tokens: 21, headDim: 16),
            k: AttentionTensor(converting: k, to: .float16, batch: 2, heads: 3, tokens: 50, headDim: 16),
            v: AttentionTensor(converting: v, to: .float16, batch: 2, heads: 3, tokens: 50, headDim: 16))
        #expect(half.elementType == .float16)
    }

    @Test func resultsAreDeterministicAcrossRunsAndThreadCounts() throws {
        let p = try AttentionProblem(batch: 1, heads: 3, queryLength: 150, keyLength: 130, headDim: 32, causal: true)
        let (q, k, v) = randomInputs(p, seed: 4242)
        for method in [AttentionMethod.int8, .fp32, .int8Paper] {
            let first = try CPUAttention.run(method, problem: p, q: q, k: k, v: v)
            for threads in [1, 2, 3, nil] {
                let again = try CPUAttention.run(method, problem: p, q: q, k: k, v: v, threads: threads)
                #expect(again.output == first.output && again.logSumExp == first.logSumExp, "\(method) threads \(String(describing: threads))")
            }
        }
    }

    @Test(arguments: AttentionMethod.allCases)
    func everyInstructionSetGivesTheSameBits(method: AttentionMethod) throws {
        let p = try AttentionProblem(batch: 1, heads: 2, kvHeads: 1, queryLength: 61, keyLength: 140, headDim: 40, causal: true)
        let (q, k, v) = randomInputs(p, seed: 31337)
        let supported = CPUKernelISA.allCases.filter(\.isSupported)
        #expect(supported.contains(.scalar))
        let baseline = try CPUAttention.run(method, problem: p, q: q, k: k, v: v, isa: .scalar)
        for isa in supported {
            let result = try CPUAttention.run(method, problem: p, q: q, k: k, v: v, isa: isa)
            #expect(result.output == baseline.output, "\(method) on \(isa)")
            #expect(result.logSumExp == baseline.logSumExp, "\(method) on \(isa)")
        }
    }

    @Test func badInputsAreRefused() throws {
        let p = try AttentionProblem(heads: 2, queryLength: 4, keyLength: 5, headDim: 8)
        let (q, k, v) = randomInputs(p, seed: 1)
        #expect(throws: AttentionError.self) { try CPUAttention.run(.int8, problem: p, q: q.dropLast(), k: k, v: v) }
        #expect(throws: AttentionError.self) { try CPUAttention.run(.fp32, problem: p, q: q, k: k, v: v + [1]) }
        #expect(throws: AttentionError.self) { try CPUAttention.reference(p, q: q, k: [], v: v) }
        do {
            _ = try CPUAttention.run(.int8, problem: p, q: q, k: Array(k.dropFirst()), v: v)
            Issue.record("expected a shape mismatch")
        } catch {
            guard case .shapeMismatch(let tensor, _, _) = error else { Issue.record("\(error)"); return }
            #expect(tensor == "k")
        }
        var bad = v
        bad[7] = .nan
        let tensor = { (x: [Float], n: Int) in try AttentionTensor(converting: x, to: .float32, batch: 1, heads: 2, tokens: n, headDim: 8) }
        #expect(throws: AttentionError.nonFiniteInput(tensor: "v", index: 7)) {
            try CPUAttention.run(.int8, problem: p, q: tensor(q, 4), k: tensor(k, 5), v: tensor(bad, 5))
        }
        // Wrong tensor shape (heads) is a shape mismatch, before any NaN scan.
        #expect(throws: AttentionError.self) {
            try CPUAttention.run(.int8, problem: p, q: tensor(q, 4), k: tensor(k, 5),
                                 v: AttentionTensor(converting: v, to: .float32, batch: 1, heads: 1, tokens: 10, headDim: 8))
        }
    }

    @Test func emptyQueriesGiveEmptyOutput() throws {
        let p = try AttentionProblem(heads: 2, queryLength: 0, keyLength: 5, headDim: 8)
        let (_, k, v) = randomInputs(p, seed: 3)
        for method in AttentionMethod.allCases {
            let result = try CPUAttention.run(method, problem: p, q: [], k: k, v: v)
            #expect(result.output.isEmpty && result.logSumExp.isEmpty)
        }
    }

    @Test func exp2IsAccurate() {
        var g = SplitMix64(seed: 8)
        for _ in 0..<10_000 {
            let x = Float.random(in: -120...0, using: &g)
            let expected = Foundation.exp2(Double(x))
            #expect(abs(Double(intfa_exp2_for_tests(x)) - expected) <= 3e-7 * expected)
        }
        #expect(intfa_exp2_for_tests(-.infinity) == 0)
        #expect(intfa_exp2_for_tests(0) == 1)
    }
}
