import CUDADriver
import Foundation
import IntFlashAttention

/// A GPU benchmark configuration: one attention shape.
struct GPUBenchConfig: Sendable {
    var batch: Int, heads: Int, seqlen: Int, headDim: Int, causal: Bool

    /// The paper's table (B=4, H=32, D=64, non-causal) and the 16k-token sweep
    /// (B·N = 16384, H·D = 2048, D ∈ {64, 128}, causal and not), as bench/sdpa_baseline.py.
    static func suites(quick: Bool) -> [GPUBenchConfig] {
        let lengths = quick ? [1024, 4096, 16384] : [1024, 2048, 4096, 8192, 16384]
        var configs = lengths.map { GPUBenchConfig(batch: 4, heads: 32, seqlen: $0, headDim: 64, causal: false) }
        for headDim in [64, 128] {
            for causal in [false, true] {
                configs += lengths.map {
                    GPUBenchConfig(batch: 16384 / $0, heads: 2048 / headDim, seqlen: $0, headDim: headDim, causal: causal)
                }
            }
        }
        return configs
    }

    func problem() throws(AttentionError) -> AttentionProblem {
        try AttentionProblem(batch: batch, heads: heads, queryLength: seqlen, keyLength: seqlen, headDim: headDim, causal: causal)
    }
}

/// What `intfa bench --backend cuda` times for each configuration.
enum GPUBenchKernel: String, CaseIterable, Sendable {
    /// `int8` attention on inputs quantized beforehand, with the family chosen for the device
    /// (wgmma on compute capability 9.0).
    case int8
    /// The same on the `mma.sync` kernel, for comparison where wgmma is the default.
    case int8MMA = "int8-mma"
    /// `int8` from fp16 inputs: quantization kernels plus attention.
    case int8EndToEnd = "int8+quant"
    case int8Paper = "int8-paper"
    case fp8E4M3 = "fp8-e4m3"
    case fp16

    var method: AttentionMethod {
        switch self {
        case .int8, .int8MMA, .int8EndToEnd: return .int8
        case .int8Paper: return .int8Paper
        case .fp8E4M3: return .fp8E4M3
        case .fp16: return .fp16
        }
    }

    /// The family this kernel forces, nil for the engine's choice.
    var family: AttentionKernelFamily? { self == .int8MMA ? .mma : nil }

    /// Whether the timed region includes quantizing fp16 inputs.
    var includesQuantization: Bool { self == .int8EndToEnd }
}

/// Times the GPU kernels with CUDA events on one device.
struct GPUBenchmark {
    var engine: CUDAAttention
    var repeats: Int
    var warmup: Int
    /// Input sets cover at least this many bytes, so that repeated runs do not read L2.
    var rotationBytes = 512 << 20

    func run(_ config: GPUBenchConfig, kernels: [GPUBenchKernel], progress: ProgressLine) throws(AttentionError) -> [BenchRecord] {
        let problem = try config.problem()
        let context = engine.context
        let qCount = problem.queryElementCount, kvCount = problem.keyElementCount
        let setBytes = (2 * qCount + 2 * kvCount) * 2
        let sets = max(1, min(8, rotationBytes / max(setBytes, 1) + 1))
        var generator = SplitMix64(seed: UInt64(DispatchTime.now().uptimeNanoseconds))
        func randomHalves(_ count: Int) -> [UInt16] {
            (0..<count).map { _ in Float16(generator.nextUnitFloat() * 4 - 2).bitPattern }
        }
        let host = (q: randomHalves(qCount), k: randomHalves(kvCount), v: randomHalves(kvCount))
        // Every set holds the same values at different addresses: enough to defeat the cache.
        let inputSets = try (0..<sets).map { (_) throws(AttentionError) in
            try cuda { () throws(CUDAError) in
                (q: try DeviceBuffer(context: context, copying: host.q),
                 k: try DeviceBuffer(context: context, copying: host.k),
                 v: try DeviceBuffer(context: context, copying: host.v),
                 o: try DeviceBuffer(context: context, byteCount: qCount * 2))
            }
        }
        func tensor(_ buffer: DeviceBuffer, heads: Int) throws(AttentionError) -> DeviceTensor {
            DeviceTensor(
                address: try cuda { () throws(CUDAError) in try buffer.pointer().address }, elementType: .float16,
                layout: .bhnd, heads: heads, tokens: problem.queryLength, headDim: problem.headDim)
        }
        var records: [BenchRecord] = []
        for kernel in kernels where engine.methods.contains(kernel.method) {
            // int8-mma only adds information where the default int8 runs on another family.
            if kernel == .int8MMA, try engine.family(for: .int8, headDim: problem.headDim) == .mma { continue }
            let chosen = engine.kernelFamily
            engine.kernelFamily = kernel.family ?? chosen
            defer { engine.kernelFamily = chosen }
            progress.update("bench cuda \(kernel.rawValue) \(problem)")
            // Pre-quantized kernels read per-set quantized copies made outside the timed region.
            var quantizedSets: [(QuantizedDeviceInputs, [DeviceBuffer])] = []
            if !kernel.includesQuantization && kernel != .fp16 {
                for set in inputSets {
                    let bytes = QuantizedDeviceInputs.byteCounts(method: kernel.method, problem: problem)
                    let buffers = try cuda { () throws(CUDAError) in
                        try [bytes.q, bytes.qScale, bytes.k, bytes.kScale, bytes.vt, bytes.vScale].map {
                            (count) throws(CUDAError) in try DeviceBuffer(context: context, byteCount: count)
                        }
                    }
                    let addresses = try cuda { () throws(CUDAError) in try buffers.map { (b) throws(CUDAError) in try b.pointer().address } }
                    let destination = QuantizedDeviceInputs(
                        method: kernel.method, q: addresses[0], qScale: addresses[1], k: addresses[2],
                        kScale: addresses[3], vt: addresses[4], vScale: addresses[5])
                    let quantized = try engine.quantize(
                        kernel.method, problem: problem, q: try tensor(set.q, heads: problem.heads),
                        k: try tensor(set.k, heads: problem.kvHeads), v: try tensor(set.v, heads: problem.kvHeads),
                        into: destination)
                    quantizedSets.append((quantized, buffers))
                }
            }
            func call(_ index: Int) throws(AttentionError) {
                let set = inputSets[index % sets]
                let output = try tensor(set.o, heads: problem.heads)
                if !quantizedSets.isEmpty {
                    try engine.forward(quantized: quantizedSets[index % sets].0, problem: problem, output: output)
                } else {
                    try engine.forward(
                        kernel.method, problem: problem, q: try tensor(set.q, heads: problem.heads),
                        k: try tensor(set.k, heads: problem.kvHeads), v: try tensor(set.v, heads: problem.kvHeads),
                        output: output)
                }
            }
            let times = try cuda { () throws(CUDAError) in
                (try CUDAEvent(context: context), try CUDAEvent(context: context))
            }
            for index in 0..<warmup { try call(index) }
            var samples: [Double] = []
            for index in 0..<repeats {
                try cuda { () throws(CUDAError) in try times.0.record(on: engine.stream) }
                try call(index)
                samples.append(try cuda { () throws(CUDAError) in
                    try times.1.record(on: engine.stream)
                    try times.1.synchronize()
                    return Double(try times.1.elapsedMilliseconds(since: times.0))
                })
            }
            records.append(BenchRecord(
                backend: "cuda", kernel: kernel.rawValue, problem: problem, ms: median(samples),
                includesQuantization: kernel.includesQuantization))
        }
        return records
    }
}
