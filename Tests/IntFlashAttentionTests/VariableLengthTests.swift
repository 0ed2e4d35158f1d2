import Testing
@testable import IntFlashAttention

/// Packed variable-length batches on the CPU: each sequence as its own dense problem, from
/// and back to the packed layout.
struct VariableLengthTests {
    @Test(arguments: [AttentionMethod.int8, .fp32])
    func everySequenceMatchesFloat64(method: AttentionMethod) throws {
        // Lengths 1, 17, 300 and a sequence without keys; the third has a cached prefix
        // (more keys than queries: bottom-right causal), the second more queries than keys.
        let queryLengths = [1, 17, 130, 5], keyLengths = [1, 9, 300, 0]
        let h = 4, hkv = 2, d = 64
        let cuQ = queryLengths.reduce(into: [0]) { $0.append($0.last! + $1) }
        let cuK = keyLengths.reduce(into: [0]) { $0.append($0.last! + $1) }
        let batch = try VariableLengthBatch(cuSeqlensQ: cuQ, cuSeqlensK: cuK, heads: h, kvHeads: hkv, headDim: d)
        #expect(batch.maxLengths == (130, 300))
        var generator = SplitMix64(seed: 11)
        let q = generator.normals(cuQ.last! * h * d)
        let k = generator.normals(cuK.last! * hkv * d), v = generator.normals(cuK.last! * hkv * d)
        let packed = try CPUAttention.runVariableLength(method, batch: batch, q: q, k: k, v: v, causal: true)
        for b in 0..<queryLengths.count {
            let nq = queryLengths[b], nk = keyLengths[b]
            // Sequence b's rows, read from the packed tensors independently: [heads, tokens, d].
            func rows(_ x: [Float], _ first: Int, _ tokens: Int, _ heads: Int) -> [Float] {
                var out: [Float] = []
                for head in 0..<heads {
                    for t in 0..<tokens {
                        let start: Int = ((first + t) * heads + head) * d
                        out += x[start..<(start + d)]
                    }
                }
                return out
            }
            let mine = rows(packed.output, cuQ[b], nq, h)
            guard nk > 0 else {
                #expect(mine.allSatisfy { $0 == 0 })
                for head in 0..<h {
                    let first: Int = head * cuQ.last! + cuQ[b]
                    #expect(packed.logSumExp[first..<(first + nq)].allSatisfy { $0 == -.infinity })
                }
                continue
            }
            let problem = try AttentionProblem(heads: h, kvHeads: hkv, queryLength: nq, keyLength: nk, headDim: d, causal: true)
            let reference = try CPUAttention.reference(problem, q: rows(q, cuQ[b], nq, h), k: rows(k, cuK[b], nk, hkv), v: rows(v, cuK[b], nk, hkv))
            #expect(relativeL1(mine, reference) < (method == .int8 ? 0.03 : 1e-5), "sequence \(b)")
        }
    }

    @Test func refusesMalformedOffsets() {
        #expect(throws: AttentionError.self) { try VariableLengthBatch(cuSeqlensQ: [1, 2], cuSeqlensK: [0, 2], heads: 1, headDim: 8) }
        #expect(throws: AttentionError.self) { try VariableLengthBatch(cuSeqlensQ: [0, 5, 3], cuSeqlensK: [0, 2, 4], heads: 1, headDim: 8) }
        #expect(throws: AttentionError.self) { try VariableLengthBatch(cuSeqlensQ: [0, 5], cuSeqlensK: [0, 2, 4], heads: 1, headDim: 8) }
        #expect(throws: AttentionError.self) { try VariableLengthBatch(cuSeqlensQ: [0, 5], cuSeqlensK: [0, 2], heads: 3, kvHeads: 2, headDim: 8) }
        #expect(throws: AttentionError.self) {
            let batch = try VariableLengthBatch(cuSeqlensQ: [0, 2], cuSeqlensK: [0, 2], heads: 1, headDim: 8)
            _ = try CPUAttention.runVariableLength(.int8, batch: batch, q: [Float](repeating: 0, count: 15), k: [], v: [])
        }
    }

    /// How the device runs a pack: one dense call for equal lengths, one padded batch for many
    /// short causal prompts, else a call per sequence with queries.
    @Test func devicePlans() throws {
        func offsets(_ lengths: [Int]) -> [Int] { lengths.reduce(into: [0]) { $0.append($0.last! + $1) } }
        func plan(_ lengths: [Int], keys: [Int]? = nil, method: AttentionMethod = .int8, causal: Bool = true,
                  aligned: Bool = true) throws -> [CUDAAttention.VariableLengthCall] {
            let batch = try VariableLengthBatch(
                cuSeqlensQ: offsets(lengths), cuSeqlensK: offsets(keys ?? lengths), heads: 4, kvHeads: 2, headDim: 64)
            return try CUDAAttention.variableLengthCalls(batch, method: method, causal: causal, softmaxScale: nil, aligned: aligned)
        }
        func padded(_ calls: [CUDAAttention.VariableLengthCall]) -> AttentionProblem? {
            guard calls.count == 1, case .padded(let problem, let sequences) = calls[0], sequences == 0..<problem.batch else { return nil }
            return problem
        }
        let short = [40, 17, 33, 64, 1, 50, 0, 29, 63, 45, 8, 58, 36]
        let problem = try #require(padded(plan(short)))
        #expect(problem.batch == 13 && problem.queryLength == 64 && problem.keyLength == 64 && problem.causal)
        #expect(padded(try plan(short, method: .fp16)) != nil)
        // Not where padding would be wrong or would not pay: a sequence with more keys than
        // queries, full attention, another method, unaligned tensors, fewer than 8 sequences,
        // or more than twice the tokens once padded.
        #expect(try plan(short, keys: short.map { $0 + 1 }).count == 12)
        #expect(try plan(short, causal: false).count == 12)
        #expect(try plan(short, method: .int8Paper).count == 12)
        #expect(try plan(short, aligned: false).count == 12)
        #expect(try plan(Array(short.prefix(7))).count == 6)
        #expect(try plan([1, 17, 1000, 4096, 333, 2048, 64, 1500]).count == 8)
        // Equal lengths: one dense call over the pack.
        guard case .dense(let dense, 0, 0) = try #require(try plan([256, 256, 256]).first) else {
            Issue.record("equal lengths should run as one dense call")
            return
        }
        #expect(dense.batch == 3 && dense.queryLength == 256)
        // Groups of at most 512 sequences (their offsets travel in the kernels' parameters).
        let many = (0..<600).map { 20 + $0 % 7 }
        let groups = try plan(many).map { call -> (Int, Range<Int>)? in
            guard case .padded(let problem, let sequences) = call else { return nil }
            return (problem.queryLength, sequences)
        }
        #expect(groups.count == 2 && groups[0]?.1 == 0..<512 && groups[1]?.1 == 512..<600 && groups[0]?.0 == 26)
        // The workspace bound holds the padded batch's buffers and its dense call's.
        let batch = try VariableLengthBatch(cuSeqlensQ: offsets(short), cuSeqlensK: offsets(short), heads: 4, kvHeads: 2, headDim: 64)
        #expect(try CUDAAttention.variableLengthWorkspaceByteCount(.int8, batch: batch, inputType: .float16)
            >= CUDAAttention.paddedBatchBytes(problem) + CUDAAttention.workspaceByteCount(.int8, problem: problem, inputType: .float16))
    }
}
