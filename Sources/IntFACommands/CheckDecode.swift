import CUDADriver
import IntFlashAttention

/// One decode case of `intfa check`: a paged INT8 cache filled by the CPU oracle
/// (``PagedKVCache``) and by the GPU append kernels from the same tokens, which must store the
/// same bits, then decode attention on the GPU cache against the oracle's decode: odd
/// lengths, partial pages, several page sizes, GQA, several new tokens (a chunk of a prompt
/// in several query tiles too), forced splits, an empty sequence.
struct DecodeCheckCase {
    var headDim: Int
    var pageSize: Int
    var heads: Int, kvHeads: Int, queryLength: Int
    var lengths: [Int]
    var causal: Bool
    var input: ElementType
    var output: ElementType
    var splits: Int?

    var description: String {
        "B\(lengths.count) H\(heads)/\(kvHeads) Nq\(queryLength) page \(pageSize) lengths \(lengths.map(String.init).joined(separator: ","))"
            + (splits.map { " splits \($0)" } ?? "") + " \(input.rawValue)"
    }

    static func all(quick: Bool) -> [DecodeCheckCase] {
        var cases: [DecodeCheckCase] = []
        for d in DecodeKernelDescriptor.headDims {
            cases.append(.init(headDim: d, pageSize: 16, heads: 8, kvHeads: 2, queryLength: 1, lengths: [1, 129, 1000],
                               causal: true, input: .float16, output: .float16))
            cases.append(.init(headDim: d, pageSize: 64, heads: 4, kvHeads: 1, queryLength: 4, lengths: [300, 4, 777],
                               causal: true, input: .bfloat16, output: .bfloat16, splits: 3))
            cases.append(.init(headDim: d, pageSize: 7, heads: 16, kvHeads: 4, queryLength: 2, lengths: [0, 63, 65, 2049],
                               causal: false, input: .float16, output: .float16, splits: 5))
            // A chunk of a prompt on the cache's pages: 37 new tokens in ten query tiles of 4.
            cases.append(.init(headDim: d, pageSize: 64, heads: 8, kvHeads: 2, queryLength: 37, lengths: [37, 300, 1000],
                               causal: true, input: .float16, output: .float16))
            // Nine query tiles in one split: each CTA writes its tile's output and log-sum-exp itself.
            cases.append(.init(headDim: d, pageSize: 32, heads: 8, kvHeads: 2, queryLength: 33, lengths: [40, 33, 500],
                               causal: true, input: .bfloat16, output: .float16, splits: 1))
            if quick { continue }
            cases.append(.init(headDim: d, pageSize: 16, heads: 16, kvHeads: 1, queryLength: 5, lengths: [5, 700],
                               causal: true, input: .bfloat16, output: .bfloat16))
            cases.append(.init(headDim: d, pageSize: 48, heads: 4, kvHeads: 4, queryLength: 50, lengths: [50, 129],
                               causal: false, input: .float16, output: .float16, splits: 2))
            cases.append(.init(headDim: d, pageSize: 256, heads: 2, kvHeads: 2, queryLength: 3, lengths: [5000],
                               causal: true, input: .float16, output: .bfloat16))
            cases.append(.init(headDim: d, pageSize: 128, heads: 4, kvHeads: 4, queryLength: 16, lengths: [16, 127],
                               causal: true, input: .bfloat16, output: .float16))
        }
        return cases
    }

    /// Relative L1 against the oracle (its output rounded to the output type) and the largest
    /// log-sum-exp difference, or the failure. The cache is filled twice from the same K and V
    /// (rounded to the input type): by the CPU oracle and by the GPU append kernels, each
    /// sequence's prefill on its own and the new tokens of every sequence in one append where
    /// all hold more than Nq tokens; the GPU's pool must hold the oracle's bits.
    func evaluate(on engine: CUDAAttention, generator: inout SplitMix64) throws(AttentionError) -> CheckOutcome {
        let d = headDim, b = lengths.count, hkv = kvHeads
        let pages = lengths.reduce(0) { $0 + ($1 + pageSize - 1) / pageSize }
        let layout = try PagedKVCache.Layout(pageSize: pageSize, pageCount: max(pages, 1), kvHeads: hkv, headDim: d)
        var cache = try PagedKVCache(layout: layout, sequences: b)
        let deviceCache = try DevicePagedKVCache(layout: layout, sequences: b, maxLength: max(lengths.max() ?? 1, 1), on: engine)
        let rounded: (Float) -> Float = input == .float16 ? { Float(Float16($0)) } : { BFloat16($0).float }
        // Per sequence [Hkv, length, D], rounded to the input type.
        let (keys, values) = (lengths.map { length in
            (0..<(hkv * length * d)).map { index in rounded(generator.nextNormal() + (index % d == 3 ? 4 : 0)) }  // an outlier channel
        }, lengths.map { length in (0..<(hkv * length * d)).map { _ in rounded(generator.nextNormal()) } })
        // Tokens `ranges[i]` (all of one count T) of sequence `sequences.lowerBound + i` into both
        // caches: [Hkv, T, D] per sequence on the host, [B', T, Hkv, D] on the device.
        func append(_ sequences: Range<Int>, _ ranges: [Range<Int>]) throws(AttentionError) {
            let t = ranges[0].count
            var deviceKeys: [Float] = [], deviceValues: [Float] = []
            for (s, range) in zip(sequences, ranges) {
                func slice(_ x: [Float]) -> [Float] {
                    (0..<hkv).flatMap { h in x[(h * lengths[s] + range.lowerBound) * d..<(h * lengths[s] + range.upperBound) * d] }
                }
                try cache.append(sequence: s, keys: slice(keys[s]), values: slice(values[s]), tokens: t)
                for token in range {
                    for h in 0..<hkv {
                        let row = (h * lengths[s] + token) * d
                        deviceKeys += keys[s][row..<(row + d)]
                        deviceValues += values[s][row..<(row + d)]
                    }
                }
            }
            let bits: ([Float]) -> [UInt16] = input == .float16 ? { $0.map { Float16($0).bitPattern } } : { $0.map { BFloat16($0).bitPattern } }
            let context = engine.context
            let (k, v) = try cuda { () throws(CUDAError) in
                (try DeviceBuffer(context: context, copying: bits(deviceKeys)), try DeviceBuffer(context: context, copying: bits(deviceValues)))
            }
            let strides = TensorLayout.bnhd.strides(heads: hkv, tokens: t, headDim: d)
            let addresses = try cuda { () throws(CUDAError) in (try k.pointer().address, try v.pointer().address) }
            try engine.append(
                to: deviceCache, keys: DeviceTensor(address: addresses.0, elementType: input, strides: strides),
                values: DeviceTensor(address: addresses.1, elementType: input, strides: strides), tokens: t, sequences: sequences)
            try cuda { () throws(CUDAError) in try engine.stream.synchronize() }  // before k and v go
        }
        // Each sequence's prefill on its own; the last Nq tokens of every sequence in one append
        // when all hold more, else each sequence's on its own.
        let joint = lengths.allSatisfy { $0 > queryLength }
        for (s, length) in lengths.enumerated() where length > 0 {
            let prefill = length > queryLength ? length - queryLength : length
            try append(s..<(s + 1), [0..<prefill])
            if prefill < length && !joint { try append(s..<(s + 1), [prefill..<length]) }
        }
        if joint { try append(0..<b, lengths.map { ($0 - queryLength)..<$0 }) }
        let stored = try deviceCache.contents()
        var codeMismatches = 0, scaleMismatches = 0
        for (gpu, cpu) in [(stored.keyCodes, cache.keyCodes), (stored.valueCodes, cache.valueCodes)] {
            codeMismatches += zip(gpu, cpu).reduce(0) { $0 + ($1.0 == $1.1 ? 0 : 1) }
        }
        for (gpu, cpu) in [(stored.keyScales, cache.keyScales), (stored.valueScales, cache.valueScales)] {
            scaleMismatches += zip(gpu, cpu).reduce(0) { $0 + ($1.0 == $1.1 ? 0 : 1) }
        }
        let tablesAgree = stored.blockTables == cache.blockTables && deviceCache.lengths == cache.lengths

        // Q in the input type, [B, H, Nq, D] for the oracle and [B, Nq, H, D] on the device.
        let raw = (0..<(b * heads * queryLength * d)).map { _ in generator.nextNormal() }
        let q = try AttentionTensor(converting: raw, to: input, batch: b, heads: heads, tokens: queryLength, headDim: d)
        let cpu = try cache.decode(queries: q.floats(), sequences: Array(0..<b), heads: heads, queryLength: queryLength, causal: causal)
        let device = TensorLayout.bhnd.reorder(q.floats(), to: .bnhd, batch: b, heads: heads, tokens: queryLength, headDim: d)
        let upload = try AttentionTensor(converting: device, to: input, batch: b, heads: heads, tokens: queryLength, headDim: d, layout: .bnhd)

        let count = b * heads * queryLength * d, rows = b * heads * queryLength
        let queryBits: [UInt16] = switch upload.storage {
        case let .float16(values): values.map(\.bitPattern)
        case let .bfloat16(values): values.map(\.bitPattern)
        case let .float32(values): values.map { Float16($0).bitPattern }
        }
        let context = engine.context
        let (queries, out, lse) = try cuda { () throws(CUDAError) in
            let out = try DeviceBuffer(context: context, byteCount: max(count * 2, 2))
            let lse = try DeviceBuffer(context: context, byteCount: max(rows * 4, 4))
            try out.fill(byte: 0xFF)  // NaN: every element must be written
            try lse.fill(byte: 0xFF)
            return (try DeviceBuffer(context: context, copying: queryBits), out, lse)
        }
        let addresses = try cuda { () throws(CUDAError) in
            (try queries.pointer().address, try out.pointer().address, try lse.pointer().address)
        }
        let strides = TensorLayout.bnhd.strides(heads: heads, tokens: queryLength, headDim: d)
        try engine.decode(
            cache: deviceCache, queries: DeviceTensor(address: addresses.0, elementType: input, strides: strides),
            heads: heads, queryLength: queryLength,
            output: DeviceTensor(address: addresses.1, elementType: output, strides: strides),
            logSumExp: addresses.2, causal: causal, splits: splits)
        let (gpuOut, gpuLse) = try cuda { () throws(CUDAError) in
            try engine.stream.synchronize()
            return (try out.toArray(of: UInt16.self, count: count), try lse.toArray(of: Float.self, count: rows))
        }
        let gpu = TensorLayout.bnhd.reorder(
            gpuOut.map { output == .float16 ? Float(Float16(bitPattern: $0)) : BFloat16(bitPattern: $0).float },
            to: .bhnd, batch: b, heads: heads, tokens: queryLength, headDim: d)
        let oracle = try AttentionTensor(converting: cpu.output, to: output, batch: b, heads: heads, tokens: queryLength, headDim: d).floats()
        var outcome = CheckOutcome()
        var difference = 0.0, norm = 0.0
        for i in 0..<count {
            difference += Double(abs(gpu[i] - oracle[i]))
            norm += Double(abs(oracle[i]))
        }
        outcome.vsCPU = norm > 0 ? difference / norm : (difference == 0 ? 0 : .infinity)
        var lseError = 0.0
        for i in 0..<rows {
            if cpu.logSumExp[i] == -.infinity || gpuLse[i] == -.infinity {
                if cpu.logSumExp[i] != gpuLse[i] { lseError = .infinity }
            } else {
                lseError = max(lseError, gpuLse[i].isNaN ? .infinity : Double(abs(gpuLse[i] - cpu.logSumExp[i])))
            }
        }
        outcome.lseError = lseError
        if !tablesAgree {
            outcome.failure = "the GPU cache's block tables or lengths differ from the oracle's"
        } else if codeMismatches + scaleMismatches > 0 {
            outcome.failure = "the GPU append stored \(codeMismatches) codes and \(scaleMismatches) scales unlike the oracle's"
        } else if gpu.contains(where: \.isNaN) {
            outcome.failure = "NaN in the output (an element left unwritten)"
        } else if !(outcome.vsCPU <= 2e-3) {
            outcome.failure = "output differs from the CPU oracle by \(formatted(outcome.vsCPU)) (relative L1)"
        } else if !(lseError <= 4e-3) {
            outcome.failure = "log-sum-exp differs from the CPU oracle by \(formatted(lseError))"
        }
        return outcome
    }
}
