import CUDADriver
import IntFlashAttention

/// One packed variable-length case of `intfa check`: the GPU's
/// ``CUDAAttention/forwardVariableLength(_:batch:q:k:v:output:causal:softmaxScale:stream:workspace:options:)``
/// against the CPU's ``CPUAttention/runVariableLength(_:batch:q:k:v:causal:softmaxScale:threads:)``
/// on the same fp16 tokens: mixed lengths (one dense call per sequence) and equal ones (one
/// dense call over the pack).
struct VariableLengthCheckCase {
    var method: AttentionMethod
    var headDim: Int
    var heads: Int, kvHeads: Int
    var queryLengths: [Int], keyLengths: [Int]
    var causal: Bool

    var description: String {
        let lengths = zip(queryLengths, keyLengths).map { $0 == $1 ? "\($0)" : "\($0)x\($1)" }.joined(separator: ",")
        return "H\(heads)/\(kvHeads) lengths \(lengths)"
    }

    static let shortPrompts = [40, 17, 33, 64, 1, 50, 0, 29, 63, 45, 8, 58, 36]

    static func all(methods: [AttentionMethod]) -> [VariableLengthCheckCase] {
        methods.filter { [.int8, .fp16].contains($0) }.flatMap { method in
            [
                .init(method: method, headDim: 128, heads: 4, kvHeads: 2, queryLengths: [1, 17, 1000, 0, 2100],
                      keyLengths: [1, 17, 1000, 5, 2100], causal: true),
                .init(method: method, headDim: 64, heads: 2, kvHeads: 2, queryLengths: [256, 256, 256],
                      keyLengths: [256, 256, 256], causal: false),
                .init(method: method, headDim: 64, heads: 8, kvHeads: 1, queryLengths: [3, 1, 64], keyLengths: [700, 65, 64],
                      causal: true),
                // Many short causal prompts: one padded dense batch (an empty sequence among them).
                .init(method: method, headDim: 128, heads: 4, kvHeads: 2, queryLengths: shortPrompts, keyLengths: shortPrompts,
                      causal: true),
                .init(method: method, headDim: 64, heads: 8, kvHeads: 1, queryLengths: [100, 90, 120, 77, 128, 111, 95, 101, 126],
                      keyLengths: [100, 90, 120, 77, 128, 111, 95, 101, 126], causal: true),
            ]
        }
    }

    func evaluate(on engine: CUDAAttention, generator: inout SplitMix64) throws(AttentionError) -> CheckOutcome {
        func offsets(_ lengths: [Int]) -> [Int] { lengths.reduce(into: [0]) { $0.append($0.last! + $1) } }
        let batch = try VariableLengthBatch(
            cuSeqlensQ: offsets(queryLengths), cuSeqlensK: offsets(keyLengths), heads: heads, kvHeads: kvHeads, headDim: headDim)
        let d = headDim, totalQ = batch.totalQueryTokens, totalK = batch.totalKeyTokens
        func halves(_ count: Int) -> [Float] { (0..<count).map { _ in Float(Float16(generator.nextNormal())) } }
        let (q, k, v) = (halves(totalQ * heads * d), halves(totalK * kvHeads * d), halves(totalK * kvHeads * d))
        let cpu = try CPUAttention.runVariableLength(method, batch: batch, q: q, k: k, v: v, causal: causal)
        let context = engine.context
        let buffers = try cuda { () throws(CUDAError) in
            let out = try DeviceBuffer(context: context, byteCount: max(q.count * 2, 2))
            try out.fill(byte: 0xFF)  // NaN: every element must be written
            return try [q, k, v].map { (x) throws(CUDAError) in
                try DeviceBuffer(context: context, copying: x.map { Float16($0).bitPattern })
            } + [out]
        }
        let addresses = try cuda { () throws(CUDAError) in try buffers.map { (b) throws(CUDAError) in try b.pointer().address } }
        func tensor(_ index: Int, heads: Int) -> DeviceTensor {
            DeviceTensor(address: addresses[index], elementType: .float16, strides: TensorStrides(batch: 0, head: d, token: heads * d))
        }
        let workspaceBytes = try CUDAAttention.variableLengthWorkspaceByteCount(method, batch: batch, inputType: .float16)
        let workspace = try cuda { () throws(CUDAError) in try DeviceBuffer(context: context, byteCount: max(workspaceBytes, 16)) }
        try engine.forwardVariableLength(
            method, batch: batch, q: tensor(0, heads: heads), k: tensor(1, heads: kvHeads), v: tensor(2, heads: kvHeads),
            output: tensor(3, heads: heads), causal: causal,
            workspace: DeviceWorkspace(address: try cuda { () throws(CUDAError) in try workspace.pointer().address }, byteCount: workspaceBytes))
        let gpu = try cuda { () throws(CUDAError) in
            try engine.stream.synchronize()
            return try buffers[3].toArray(of: UInt16.self, count: q.count).map { Float(Float16(bitPattern: $0)) }
        }
        let oracle = cpu.output.map { Float(Float16($0)) }
        var outcome = CheckOutcome()
        var difference = 0.0, norm = 0.0
        for i in gpu.indices {
            difference += Double(abs(gpu[i] - oracle[i]))
            norm += Double(abs(oracle[i]))
        }
        outcome.vsCPU = difference / max(norm, .leastNormalMagnitude)
        if gpu.contains(where: \.isNaN) {
            outcome.failure = "NaN in the output (an element left unwritten)"
        } else if !(outcome.vsCPU <= 2e-3) {
            outcome.failure = "output differs from the CPU's packed attention by \(formatted(outcome.vsCPU)) (relative L1)"
        }
        return outcome
    }
}
