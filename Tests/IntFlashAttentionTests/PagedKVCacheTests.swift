import Foundation
import Testing
@testable import IntFlashAttention

/// The paged INT8 KV cache's CPU oracle: decode against float64, independence of the page
/// size and of how tokens are appended, partial pages and empty sequences, and refusals.
struct PagedKVCacheTests {
    /// A cache holding `lengths[s]` random tokens per sequence (a prefill of `prefill` tokens,
    /// or all of them when shorter, then the rest in appends of `chunk`), and those tokens.
    static func filledCache(
        lengths: [Int], pageSize: Int, kvHeads: Int = 2, headDim: Int = 64, prefill: Int = 64, chunk: Int = 1, seed: UInt64 = 1
    ) throws -> (cache: PagedKVCache, keys: [[Float]], values: [[Float]]) {
        let pagesPerSequence = lengths.map { ($0 + pageSize - 1) / pageSize }
        let layout = try PagedKVCache.Layout(
            pageSize: pageSize, pageCount: max(pagesPerSequence.reduce(0, +), 1), kvHeads: kvHeads, headDim: headDim)
        var cache = try PagedKVCache(layout: layout, sequences: lengths.count)
        var generator = SplitMix64(seed: seed)
        var allKeys: [[Float]] = [], allValues: [[Float]] = []
        for (s, n) in lengths.enumerated() {
            // [kvHeads, n, headDim]; keys with an outlier channel, as real keys have.
            var keys = generator.normals(kvHeads * n * headDim)
            for i in stride(from: 3, to: keys.count, by: headDim) { keys[i] += 6 }
            let values = generator.normals(kvHeads * n * headDim)
            var start = 0
            while start < n {
                let count = start == 0 ? min(prefill, n) : min(chunk, n - start)
                // Tokens start..<start + count of every head.
                func slice(_ x: [Float]) -> [Float] {
                    var part: [Float] = []
                    for h in 0..<kvHeads {
                        let first: Int = (h * n + start) * headDim
                        part += x[first..<(first + count * headDim)]
                    }
                    return part
                }
                try cache.append(sequence: s, keys: slice(keys), values: slice(values), tokens: count)
                start += count
            }
            allKeys.append(keys)
            allValues.append(values)
        }
        return (cache, allKeys, allValues)
    }

    @Test func decodeStaysWithinThePrefillSchemesError() throws {
        let lengths = [300, 517, 1000]
        let (cache, keys, values) = try Self.filledCache(lengths: lengths, pageSize: 64, prefill: 200, chunk: 4)
        let heads = 4, queryLength = 4, d = 64
        var generator = SplitMix64(seed: 7)
        let queries = generator.normals(lengths.count * heads * queryLength * d)
        let decoded = try cache.decode(queries: queries, sequences: [0, 1, 2], heads: heads, queryLength: queryLength)
        for (s, n) in lengths.enumerated() {
            let problem = try AttentionProblem(heads: heads, kvHeads: 2, queryLength: queryLength, keyLength: n, headDim: d, causal: true)
            let q = Array(queries[(s * heads * queryLength * d)..<((s + 1) * heads * queryLength * d)])
            let reference = try CPUAttention.reference(problem, q: q, k: keys[s], v: values[s])
            let mine = Array(decoded.output[(s * heads * queryLength * d)..<((s + 1) * heads * queryLength * d)])
            let prefill = try CPUAttention.run(.int8, problem: problem, q: q, k: keys[s], v: values[s]).output
            let (error, prefillError) = (relativeL1(mine, reference), relativeL1(prefill, reference))
            // The cache's per-token K and V scales against the prefill scheme's K groups and V
            // channels: same order of error (the GPU target is within ±20%; this bound leaves
            // room for the random draw).
            #expect(error < 1.5 * prefillError, "sequence \(s): decode \(error), prefill int8 \(prefillError)")
            #expect(error < 0.03)
        }
    }

    @Test func pageSizeDoesNotChangeTheResult() throws {
        let lengths = [1, 33, 200]
        var results: [[Float]] = []
        for pageSize in [16, 17, 64, 256] {
            let (cache, _, _) = try Self.filledCache(lengths: lengths, pageSize: pageSize, prefill: 20, chunk: 3)
            var generator = SplitMix64(seed: 3)
            let queries = generator.normals(3 * 2 * 1 * 64)
            results.append(try cache.decode(queries: queries, sequences: [0, 1, 2], heads: 2, queryLength: 1).output)
        }
        #expect(results.allSatisfy { $0 == results[0] })
    }

    @Test func appendsStoreTheSameCodesHoweverTheyAreSplit() throws {
        let one = try Self.filledCache(lengths: [150], pageSize: 32, prefill: 50, chunk: 100)
        let many = try Self.filledCache(lengths: [150], pageSize: 32, prefill: 50, chunk: 1)
        #expect(try one.cache.dequantized(sequence: 0) == many.cache.dequantized(sequence: 0))
        // The prefill fixes K's means; later tokens are quantized against them.
        let means = try #require(one.cache.keyMeans[0])
        let prefillKeys = Array(one.keys[0][0..<(50 * 64)])
        #expect(means[0..<64].elementsEqual(KeySmoothing.channelMeans(prefillKeys, tokens: 50, channels: 64)))
    }

    @Test func partialPagesAndEmptySequences() throws {
        let (cache, keys, values) = try Self.filledCache(lengths: [1, 15, 16, 17, 0], pageSize: 16, kvHeads: 1, headDim: 32, prefill: 16)
        #expect(cache.blockTables.map(\.count) == [1, 1, 1, 2, 0])
        #expect(cache.freePageCount == 0)
        // One query each, not causal: the empty sequence's row sees no key.
        var generator = SplitMix64(seed: 5)
        let queries = generator.normals(5 * 32)
        let decoded = try cache.decode(queries: queries, sequences: [0, 1, 2, 3, 4], heads: 1, queryLength: 1, causal: false)
        #expect(decoded.output[(4 * 32)...].allSatisfy { $0 == 0 } && decoded.logSumExp[4] == -.infinity)
        for s in 0..<4 {
            let n = [1, 15, 16, 17][s]
            let problem = try AttentionProblem(heads: 1, queryLength: 1, keyLength: n, headDim: 32)
            let reference = try CPUAttention.reference(problem, q: Array(queries[(s * 32)..<((s + 1) * 32)]), k: keys[s], v: values[s])
            #expect(relativeL1(Array(decoded.output[(s * 32)..<((s + 1) * 32)]), reference) < 0.03)
            #expect(decoded.logSumExp[s].isFinite)
        }
    }

    @Test func refusesWhatItCannotHold() throws {
        let layout = try PagedKVCache.Layout(pageSize: 16, pageCount: 2, kvHeads: 1, headDim: 8)
        var cache = try PagedKVCache(layout: layout, sequences: 2)
        let row = [Float](repeating: 1, count: 8)
        #expect(throws: AttentionError.self) { try cache.append(sequence: 0, keys: [], values: [], tokens: 0) }
        #expect(throws: AttentionError.self) { try cache.append(sequence: 2, keys: row, values: row, tokens: 1) }
        #expect(throws: AttentionError.self) { try cache.append(sequence: 0, keys: row + row, values: row, tokens: 1) }
        #expect(throws: AttentionError.self) { try cache.append(sequence: 0, keys: [.nan] + row.dropFirst(), values: row, tokens: 1) }
        let many = [Float](repeating: 1, count: 8 * 33)
        #expect(throws: AttentionError.self) { try cache.append(sequence: 0, keys: many, values: many, tokens: 33) }
        #expect(cache.freePageCount == 2 && cache.lengths == [0, 0])  // a refused append changes nothing
        try cache.append(sequence: 0, keys: row, values: row, tokens: 1)
        #expect(throws: AttentionError.self) { try cache.decode(queries: row + row, sequences: [0], heads: 1, queryLength: 2) }
        #expect(throws: AttentionError.self) { try cache.decode(queries: row, sequences: [0], heads: 3, queryLength: 1) }
        #expect(throws: AttentionError.self) { try PagedKVCache.Layout(pageSize: 0, pageCount: 1, kvHeads: 1, headDim: 8) }
        #expect(throws: AttentionError.self) { try PagedKVCache.Layout(pageSize: 16, pageCount: 1, kvHeads: 1, headDim: 12) }
    }

    @Test func aTokenTakesLittleMoreThanHalfOfAnFP16CachesBytes() throws {
        for d in [64, 128] {
            let layout = try PagedKVCache.Layout(pageSize: 64, pageCount: 1, kvHeads: 8, headDim: d)
            #expect(Double(layout.bytesPerToken) <= 0.55 * Double(8 * 4 * d))
        }
    }
}
