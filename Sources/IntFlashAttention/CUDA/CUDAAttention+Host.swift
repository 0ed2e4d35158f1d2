import CUDADriver

/// The result of ``CUDAAttention/run(_:problem:q:k:v:outputType:computeLogSumExp:validateInputs:)``.
public struct CUDAAttentionResult: Sendable {
    /// [B, H, Nq, D] in Q's layout.
    public var output: AttentionTensor
    /// [B, H, Nq] natural-log log-sum-exp (−∞ for rows that see no key); empty unless asked for.
    public var logSumExp: [Float]
}

extension CUDAAttention {
    /// Attention on host tensors: uploads them, runs ``forward(_:problem:q:k:v:output:logSumExp:)``
    /// and downloads the result. fp32 inputs are rounded to fp16 on the way (the GPU kernels
    /// read fp16 or bf16). The output has `outputType` (default: Q's type, fp16 for fp32
    /// inputs, widened back to fp32) and Q's layout. The output is filled with NaN before the
    /// launch, so an element the kernel failed to write cannot pass for a result.
    public func run(
        _ method: AttentionMethod, problem: AttentionProblem,
        q: AttentionTensor, k: AttentionTensor, v: AttentionTensor,
        outputType: ElementType? = nil, computeLogSumExp: Bool = false, validateInputs: Bool = true
    ) throws(AttentionError) -> CUDAAttentionResult {
        try problem.validate()
        try Self.checkShape(q, "Q", heads: problem.heads, tokens: problem.queryLength, problem: problem)
        try Self.checkShape(k, "K", heads: problem.kvHeads, tokens: problem.keyLength, problem: problem)
        try Self.checkShape(v, "V", heads: problem.kvHeads, tokens: problem.keyLength, problem: problem)
        if validateInputs {
            try q.validateFinite(name: "Q")
            try k.validateFinite(name: "K")
            try v.validateFinite(name: "V")
        }
        let deviceType: ElementType = (outputType ?? q.elementType) == .bfloat16 ? .bfloat16 : .float16
        let outputCount = problem.queryElementCount
        let (qBuffer, qTensor) = try cuda { () throws(CUDAError) in try upload(q) }
        let (kBuffer, kTensor) = try cuda { () throws(CUDAError) in try upload(k) }
        let (vBuffer, vTensor) = try cuda { () throws(CUDAError) in try upload(v) }
        let lseCount = problem.batch * problem.heads * problem.queryLength
        let (out, lse) = try cuda { () throws(CUDAError) in
            let out = try DeviceBuffer(context: context, byteCount: max(outputCount * 2, 2))
            let lse = try DeviceBuffer(context: context, byteCount: max(lseCount * 4, 4))
            try stream.fill(out, byte: 0xFF)  // NaN in fp16 and bf16
            try stream.fill(lse, byte: 0xFF)
            return (out, lse)
        }
        let outTensor = DeviceTensor(
            address: try cuda { () throws(CUDAError) in try out.pointer().address }, elementType: deviceType,
            layout: q.layout, heads: problem.heads, tokens: problem.queryLength, headDim: problem.headDim)
        let lseAddress = try cuda { () throws(CUDAError) in try lse.pointer().address }
        try withExtendedLifetime((qBuffer, kBuffer, vBuffer)) { () throws(AttentionError) in
            try forward(
                method, problem: problem, q: qTensor, k: kTensor, v: vTensor, output: outTensor,
                logSumExp: computeLogSumExp ? lseAddress : nil)
            try cuda { () throws(CUDAError) in try stream.synchronize() }
        }
        let bits = try cuda { () throws(CUDAError) in try out.toArray(of: UInt16.self, count: outputCount) }
        let storage: AttentionTensor.Storage
        switch (deviceType, outputType ?? q.elementType) {
        case (.bfloat16, _): storage = .bfloat16(bits.map { BFloat16(bitPattern: $0) })
        case (_, .float32): storage = .float32(bits.map { Float(Float16(bitPattern: $0)) })
        default: storage = .float16(bits.map { Float16(bitPattern: $0) })
        }
        let output = try AttentionTensor(
            storage: storage, batch: problem.batch, heads: problem.heads, tokens: problem.queryLength,
            headDim: problem.headDim, layout: q.layout)
        let logSumExp = computeLogSumExp
            ? try cuda { () throws(CUDAError) in try lse.toArray(of: Float.self, count: lseCount) } : []
        return CUDAAttentionResult(output: output, logSumExp: logSumExp)
    }

    /// Copies a host tensor to the device as fp16 (fp32 is rounded) or bf16 bits. The copy
    /// is queued on ``stream``, like the fills and kernels after it: on the legacy stream
    /// nothing would order it before them.
    func upload(_ tensor: AttentionTensor) throws(CUDAError) -> (DeviceBuffer, DeviceTensor) {
        let bits: [UInt16]
        let type: ElementType
        switch tensor.storage {
        case let .float16(values): (bits, type) = (values.map(\.bitPattern), .float16)
        case let .bfloat16(values): (bits, type) = (values.map(\.bitPattern), .bfloat16)
        case let .float32(values): (bits, type) = (values.map { Float16($0).bitPattern }, .float16)
        }
        let buffer = try DeviceBuffer(context: context, byteCount: max(bits.count, 1) * 2)
        try stream.copy(bits, to: buffer)
        let device = DeviceTensor(
            address: try buffer.pointer().address, elementType: type, layout: tensor.layout,
            heads: tensor.heads, tokens: tensor.tokens, headDim: tensor.headDim)
        return (buffer, device)
    }

    private static func checkShape(
        _ tensor: AttentionTensor, _ name: String, heads: Int, tokens: Int, problem: AttentionProblem
    ) throws(AttentionError) {
        guard tensor.batch == problem.batch, tensor.heads == heads, tensor.tokens == tokens,
              tensor.headDim == problem.headDim
        else {
            throw .shapeMismatch(
                tensor: name, expected: "[\(problem.batch), \(heads), \(tokens), \(problem.headDim)] (B, H, N, D)",
                actual: tensor.shapeDescription)
        }
    }
}
