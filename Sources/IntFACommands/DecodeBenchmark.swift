import CUDADriver
import Foundation
import IntFlashAttention

/// One decode shape of `intfa bench --decode`: B sequences of Nk cached tokens each, one new
/// query token per sequence.
struct DecodeBenchConfig: Sendable {
    var batch: Int, keyLength: Int, heads: Int, kvHeads: Int, headDim: Int, pageSize: Int

    /// The serving suite: B ∈ {1, 16, 64} × Nk ∈ {1k, 8k, 32k, 128k} at H = 32, Hkv = 8,
    /// D = 128, pages of 64 tokens (Llama-3-8B's attention shape).
    static func suite(quick: Bool) -> [DecodeBenchConfig] {
        let lengths = quick ? [8192, 131_072] : [1024, 8192, 32_768, 131_072]
        return [1, 16, 64].flatMap { b in
            lengths.map { DecodeBenchConfig(batch: b, keyLength: $0, heads: 32, kvHeads: 8, headDim: 128, pageSize: 64) }
        }
    }

    func problem() throws(AttentionError) -> AttentionProblem {
        try AttentionProblem(
            batch: batch, heads: heads, kvHeads: kvHeads, queryLength: 1, keyLength: keyLength, headDim: headDim, causal: false)
    }
}

/// What `intfa bench --decode` times: one decode step on a paged INT8 cache and on
/// contiguous fp16 K/V, each counted by the bytes it must read, against the device's
/// measured copy bandwidth. The L2 cache is flushed before every timed run (``CacheFlushMode``),
/// outside the timed region, so that each step reads its cache from device memory as it would
/// in serving.
struct DecodeBenchmark {
    var engine: CUDAAttention
    var repeats: Int
    var warmup: Int
    var flush: CacheFlushMode
    /// Tokens per append while filling a cache.
    var fillChunk = 512

    /// Device-to-device copy bandwidth in GB/s, counting read and written bytes (the
    /// convention of bandwidthTest): the median of `repeats` copies of 1 GiB.
    func copyBandwidth() throws(AttentionError) -> Double {
        let context = engine.context, bytes = 1 << 30
        let (source, destination) = try cuda { () throws(CUDAError) in
            (try DeviceBuffer(context: context, byteCount: bytes), try DeviceBuffer(context: context, byteCount: bytes))
        }
        let ms = try timed { () throws(AttentionError) in
            try cuda { () throws(CUDAError) in try engine.stream.copy(source, to: destination) }
        }
        return 2 * Double(bytes) / (ms / 1e3) / 1e9
    }

    func run(_ config: DecodeBenchConfig, copyBandwidth: Double, progress: ProgressLine) throws(AttentionError) -> [BenchRecord] {
        let problem = try config.problem()
        let context = engine.context, b = config.batch, h = config.heads, hkv = config.kvHeads, d = config.headDim
        var generator = SplitMix64(seed: UInt64(DispatchTime.now().uptimeNanoseconds))
        let queryBits = (0..<(b * h * d)).map { _ in Float16(generator.nextNormal()).bitPattern }
        let (query, output) = try cuda { () throws(CUDAError) in
            (try DeviceBuffer(context: context, copying: queryBits), try DeviceBuffer(context: context, byteCount: b * h * d * 2))
        }
        let rowStrides = TensorLayout.bnhd.strides(heads: h, tokens: 1, headDim: d)
        let (queryAddress, outputAddress) = try cuda { () throws(CUDAError) in (try query.pointer().address, try output.pointer().address) }
        let queries = DeviceTensor(address: queryAddress, elementType: .float16, strides: rowStrides)
        let out = DeviceTensor(address: outputAddress, elementType: .float16, strides: rowStrides)
        var records: [BenchRecord] = []

        // The paged INT8 cache, filled by the append kernels with random tokens.
        do {
            progress.update("bench decode int8: filling B=\(b) Nk=\(config.keyLength)")
            let pagesPerSequence = (config.keyLength + config.pageSize - 1) / config.pageSize
            let layout = try PagedKVCache.Layout(pageSize: config.pageSize, pageCount: b * pagesPerSequence, kvHeads: hkv, headDim: d)
            let cache = try DevicePagedKVCache(layout: layout, sequences: b, maxLength: config.keyLength, on: engine)
            let chunk = min(fillChunk, config.keyLength)
            let tokens = (0..<(b * chunk * hkv * d)).map { _ in Float16(generator.nextNormal()).bitPattern }
            let source = try cuda { () throws(CUDAError) in try DeviceBuffer(context: context, copying: tokens) }
            let address = try cuda { () throws(CUDAError) in try source.pointer().address }
            var filled = 0
            while filled < config.keyLength {
                let t = min(chunk, config.keyLength - filled)
                let strides = TensorLayout.bnhd.strides(heads: hkv, tokens: chunk, headDim: d)
                let tensor = DeviceTensor(address: address, elementType: .float16, strides: strides)
                try engine.append(to: cache, keys: tensor, values: tensor, tokens: t)
                filled += t
            }
            let view = try cache.view()
            let workspaceBytes = engine.decodeWorkspaceByteCount(cache: view, heads: h, queryLength: 1)
            let workspaceBuffer = try cuda { () throws(CUDAError) in try DeviceBuffer(context: context, byteCount: workspaceBytes) }
            let workspace = DeviceWorkspace(
                address: try cuda { () throws(CUDAError) in try workspaceBuffer.pointer().address }, byteCount: workspaceBytes)
            let ms = try timed { () throws(AttentionError) in
                try engine.decode(cache: view, queries: queries, heads: h, queryLength: 1, output: out, causal: false, workspace: workspace)
            }
            let bytes = b * config.keyLength * layout.bytesPerToken + b * pagesPerSequence * 4 + b * h * d * 2
            records.append(record("decode-int8", problem: problem, ms: ms, bytes: bytes, copyBandwidth: copyBandwidth))
        }

        // Our fp16 attention kernel as a decode step on contiguous fp16 K/V [B, Hkv, Nk, D].
        do {
            progress.update("bench decode fp16: B=\(b) Nk=\(config.keyLength)")
            let elements = b * hkv * config.keyLength * d
            let (keys, values) = try cuda { () throws(CUDAError) in
                let keys = try DeviceBuffer(context: context, byteCount: elements * 2)
                let values = try DeviceBuffer(context: context, byteCount: elements * 2)
                try keys.fill(word: 0x3C00_3800)  // 0.5 and 1.0: finite values; the speed does not depend on them
                try values.fill(word: 0x3800_3C00)
                return (keys, values)
            }
            let kv = try cuda { () throws(CUDAError) in (try keys.pointer().address, try values.pointer().address) }
            let kvLayout = TensorLayout.bhnd
            let k = DeviceTensor(address: kv.0, elementType: .float16, layout: kvLayout, heads: hkv, tokens: config.keyLength, headDim: d)
            let v = DeviceTensor(address: kv.1, elementType: .float16, layout: kvLayout, heads: hkv, tokens: config.keyLength, headDim: d)
            let q = DeviceTensor(address: queryAddress, elementType: .float16, strides: rowStrides)
            let ms = try timed { () throws(AttentionError) in
                try engine.forward(.fp16, problem: problem, q: q, k: k, v: v, output: out)
            }
            let bytes = 2 * elements * 2 + b * h * d * 2
            records.append(record("decode-fp16-dense", problem: problem, ms: ms, bytes: bytes, copyBandwidth: copyBandwidth))
        }
        return records
    }

    private func record(_ kernel: String, problem: AttentionProblem, ms: Double, bytes: Int, copyBandwidth: Double) -> BenchRecord {
        var record = BenchRecord(backend: "cuda", kernel: kernel, problem: problem, ms: ms, includesQuantization: false)
        let bandwidth = Double(bytes) / (ms / 1e3) / 1e9
        record.bytesRead = bytes
        record.bandwidthGBs = bandwidth
        record.copyBandwidthGBs = copyBandwidth
        record.bandwidthFraction = bandwidth / copyBandwidth
        record.l2Flush = flush.rawValue
        return record
    }

    /// Median milliseconds of `repeats` runs of `body` after `warmup` untimed ones, each run
    /// after an L2 flush that the CUDA events leave out.
    private func timed(_ body: () throws(AttentionError) -> Void) throws(AttentionError) -> Double {
        let context = engine.context, stream = engine.stream
        let (start, end) = try cuda { () throws(CUDAError) in (try CUDAEvent(context: context), try CUDAEvent(context: context)) }
        let cacheFlush = try CacheFlush(mode: flush, engine: engine)
        for _ in 0..<warmup { try body() }
        var samples: [Double] = []
        for _ in 0..<repeats {
            try cacheFlush.run()
            try cuda { () throws(CUDAError) in try start.record(on: stream) }
            try body()
            samples.append(try cuda { () throws(CUDAError) in
                try end.record(on: stream)
                try end.synchronize()
                return Double(try end.elapsedMilliseconds(since: start))
            })
        }
        return median(samples)
    }
}
