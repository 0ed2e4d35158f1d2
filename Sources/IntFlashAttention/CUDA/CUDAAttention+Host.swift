import CUDADriver

/// The result of ``CUDAAttention/run(_:problem:q:k:v:outputType:computeLogSumExp:validateInputs:)``.
public struct CUDAAttentionResult: Sendable {
    /// [B, H, Nq, D] in Q's layout.
    public var output: AttentionTensor
    /// [B, H, Nq] natural-log log-sum-exp (−∞ for rows that see no key); empty unless asked for.
    public var logSumExp: [Float]
}

extension CUDAAttention {
    /// Attention on host tensors: uploads them, runs ``forward(_:problem:q:k:v:output:logSumExp:stream:workspace:options:)``
    /// and downloads the result. fp32 inputs are rounded to fp16 on the way (the GPU kernels
    /// read fp16 or bf16). The output has `outputType` (default: Q's type, fp16 for fp32
    /// inputs, widened back to fp32) and Q's layout. The output is filled with NaN before the
    /// launch, so an element the kernel failed to write cannot pass for a result.
    ///
    /// Non-finite inputs follow the CPU path's contract (``InputScreen``): an fp32 value that
    /// rounds to ±Inf in fp16 (|x| ≥ 65520), or a bf16 one under `fp16`, which converts to
    /// fp16, counts as non-finite. With `validateInputs` the first one throws; without, the
    /// device's own handling of them (docs/VALIDATION.md) returns NaN in the rows they reach.
    public func run(
        _ method: AttentionMethod, problem: AttentionProblem,
        q: AttentionTensor, k: AttentionTensor, v: AttentionTensor,
        outputType: ElementType? = nil, computeLogSumExp: Bool = false, validateInputs: Bool = true
    ) throws(AttentionError) -> CUDAAttentionResult {
        try run(
            method, problem: problem, q: q, k: k, v: v, outputType: outputType, computeLogSumExp: computeLogSumExp,
            validateInputs: validateInputs, rowPadding: 0)
    }

    /// ``run(_:problem:q:k:v:outputType:computeLogSumExp:validateInputs:)`` with the inputs
    /// uploaded as strided views: each token row is followed by `rowPadding` elements (a
    /// multiple of 8, so the fp16 kernel's 16-byte rows stay aligned) holding NaN, which a
    /// kernel that reads past a row would carry into its output. For `intfa check --fuzz`.
    package func run(
        _ method: AttentionMethod, problem: AttentionProblem,
        q: AttentionTensor, k: AttentionTensor, v: AttentionTensor,
        outputType: ElementType?, computeLogSumExp: Bool, validateInputs: Bool, rowPadding: Int
    ) throws(AttentionError) -> CUDAAttentionResult {
        guard rowPadding >= 0, rowPadding % 8 == 0 else {
            throw .invalidDimension(name: "rowPadding", value: rowPadding, requirement: "must be a non-negative multiple of 8")
        }
        try problem.validate()
        try Self.checkShape(q, "Q", heads: problem.heads, tokens: problem.queryLength, problem: problem)
        try Self.checkShape(k, "K", heads: problem.kvHeads, tokens: problem.keyLength, problem: problem)
        try Self.checkShape(v, "V", heads: problem.kvHeads, tokens: problem.keyLength, problem: problem)
        // Host copies: the inputs widened for the scan and their fp16 bits, the output's bits
        // and values.
        let inputs = CheckedSize.sum(problem.queryElementCount, problem.keyElementCount, problem.keyElementCount) ?? .max
        let hostBytes = CheckedSize.sum(
            CheckedSize.product(inputs, 6) ?? .max, CheckedSize.product(problem.queryElementCount, 8) ?? .max) ?? .max
        try HostMemory.reserve(hostBytes, for: "the host copies of the GPU call (\(problem))")
        if validateInputs { try Self.validate(method, q: q, k: k, v: v) }
        return try runUploaded(
            method, problem: problem, q: q, k: k, v: v, outputType: outputType, computeLogSumExp: computeLogSumExp,
            rowPadding: rowPadding)
    }

    /// Throws for the first offending element of host tensors (the contract's validation).
    private static func validate(
        _ method: AttentionMethod, q: AttentionTensor, k: AttentionTensor, v: AttentionTensor
    ) throws(AttentionError) {
        // Rounding fp32 to fp16 on upload, or bf16 to fp16 in the fp16 method, overflows from
        // 65520 on (fp16 inputs never reach it; fp32 and bf16 inputs together are refused later).
        let types = [q.elementType, k.elementType, v.elementType]
        let fromSingle = types.contains(.float32)
        let limit = fromSingle || (method == .fp16 && types.contains(.bfloat16)) ? InputScreen.fp16Overflow : Float.infinity
        let reason = fromSingle
            ? "fp32 inputs are rounded to fp16 for the GPU, whose largest finite value is \(Int(InputScreen.fp16Largest))"
            : InputScreen.fp16Reason(method)
        for (name, x) in [("Q", q), ("K", k), ("V", v)] {
            try InputScreen.validate(x.floatsBHND(), tensor: name, limit: limit, reason: reason)
        }
    }

    /// `run` after validation: upload, forward, download.
    private func runUploaded(
        _ method: AttentionMethod, problem: AttentionProblem,
        q: AttentionTensor, k: AttentionTensor, v: AttentionTensor,
        outputType: ElementType?, computeLogSumExp: Bool, rowPadding: Int
    ) throws(AttentionError) -> CUDAAttentionResult {
        let deviceType: ElementType = (outputType ?? q.elementType) == .bfloat16 ? .bfloat16 : .float16
        let outputCount = problem.queryElementCount
        let (qBuffer, qTensor) = try cuda { () throws(CUDAError) in try upload(q, rowPadding: rowPadding) }
        let (kBuffer, kTensor) = try cuda { () throws(CUDAError) in try upload(k, rowPadding: rowPadding) }
        let (vBuffer, vTensor) = try cuda { () throws(CUDAError) in try upload(v, rowPadding: rowPadding) }
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

    /// Copies a host tensor to the device as fp16 (fp32 is rounded) or bf16 bits, each token
    /// row followed by `rowPadding` NaN elements. The copy is queued on ``stream``, like the
    /// fills and kernels after it: on the legacy stream nothing would order it before them.
    func upload(_ tensor: AttentionTensor, rowPadding: Int = 0) throws(CUDAError) -> (DeviceBuffer, DeviceTensor) {
        var bits: [UInt16]
        let type: ElementType
        switch tensor.storage {
        case let .float16(values): (bits, type) = (values.map(\.bitPattern), .float16)
        case let .bfloat16(values): (bits, type) = (values.map(\.bitPattern), .bfloat16)
        case let .float32(values): (bits, type) = (values.map { Float16($0).bitPattern }, .float16)
        }
        var strides = tensor.strides
        if rowPadding > 0 {
            // Rows of `width` elements (D in BHND, H·D in BNHD) become rows of width + padding.
            let width = strides.token, rows = bits.count / max(width, 1)
            let nan: UInt16 = type == .bfloat16 ? 0x7FC0 : 0x7E00
            var padded = [UInt16](repeating: nan, count: rows * (width + rowPadding))
            for row in 0..<rows {
                for i in 0..<width { padded[row * (width + rowPadding) + i] = bits[row * width + i] }
            }
            bits = padded
            let stretch = { (stride: Int) in stride / width * (width + rowPadding) }
            strides = tensor.layout == .bhnd
                ? TensorStrides(batch: stretch(strides.batch), head: stretch(strides.head), token: width + rowPadding)
                : TensorStrides(batch: stretch(strides.batch), head: strides.head, token: width + rowPadding)
        }
        let buffer = try DeviceBuffer(context: context, byteCount: max(bits.count, 1) * 2)
        try stream.copy(bits, to: buffer)
        let device = DeviceTensor(address: try buffer.pointer().address, elementType: type, strides: strides)
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
