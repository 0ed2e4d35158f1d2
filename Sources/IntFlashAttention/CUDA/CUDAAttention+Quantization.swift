import CUDADriver

/// The quantization pipeline: fp16/bf16 device tensors → the codes and scales of
/// docs/SCHEMES.md in the workspace (or the caller's buffers), by the kernels of
/// `Kernels/quantize.cu`.
extension CUDAAttention {

    /// Runs `method`'s quantization kernels (or none, for fp16 inputs of `fp16`) and returns
    /// the attention parameters that read their results.
    func prepareInputs(
        _ method: AttentionMethod, problem: AttentionProblem, q: DeviceTensor, k: DeviceTensor, v: DeviceTensor,
        destination: QuantizedDeviceInputs? = nil
    ) throws(AttentionError) -> AttentionParams {
        // The callers have run validateInputs (element types, alignment, strides).
        let b = problem.batch, h = problem.heads, hkv = problem.kvHeads, d = problem.headDim
        let nq = problem.queryLength, nk = problem.keyLength
        let nkPad = QuantizedDeviceInputs.paddedKeyLength(nk)
        let smL = problem.softmaxScale * Self.log2e

        if method == .fp16 {
            var params = AttentionParams()
            let (qf, kf, vf) = try (halfTensor(q, heads: h, tokens: nq, problem: problem, slot: .qCodes),
                                    halfTensor(k, heads: hkv, tokens: nk, problem: problem, slot: .kCodes),
                                    halfTensor(v, heads: hkv, tokens: nk, problem: problem, slot: .vCodes))
            (params.q, params.k, params.v) = (qf.address, kf.address, vf.address)
            (params.qStrideBatch, params.qStrideHead, params.qStrideToken) = Self.strides(qf.strides)
            (params.kStrideBatch, params.kStrideHead, params.kStrideToken) = Self.strides(kf.strides)
            (params.vStrideBatch, params.vStrideHead, params.vStrideRow) = Self.strides(vf.strides)
            return params
        }

        let code: QuantizationKernelDescriptor.Code = method == .fp8E4M3 ? .e4m3 : .int8
        let perTensor = method == .fp8E4M3
        let input = try Self.kernelInput(q.elementType)
        guard k.elementType == q.elementType, v.elementType == q.elementType else {
            throw .shapeMismatch(tensor: "K/V", expected: "the element type of Q (\(q.elementType))", actual: "\(k.elementType)/\(v.elementType)")
        }
        let ws = workspace
        func addr(_ slot: WorkspaceSlot, _ bytes: Int) throws(AttentionError) -> UInt64 {
            try cuda { () throws(CUDAError) in try ws.address(slot, byteCount: bytes) }
        }
        let statsQ = (mean: try addr(.qMean, b * h * d * 4), amax: try addr(.qAmax, b * h * d * 4))
        let statsK = (mean: try addr(.kMean, b * hkv * d * 4), amax: try addr(.kAmax, b * hkv * d * 4))
        let statsV = (mean: try addr(.vMean, b * hkv * d * 4), amax: try addr(.vAmax, b * hkv * d * 4))
        var params = AttentionParams()
        if let destination {
            (params.q, params.qScale, params.k) = (destination.q, destination.qScale, destination.k)
            (params.kScale, params.v, params.vScale) = (destination.kScale, destination.vt, destination.vScale)
        } else {
            let bytes = QuantizedDeviceInputs.byteCounts(method: method, problem: problem)
            params.q = try addr(.qCodes, bytes.q)
            params.qScale = try addr(.qScales, bytes.qScale)
            params.k = try addr(.kCodes, bytes.k)
            params.kScale = try addr(.kScales, bytes.kScale)
            params.v = try addr(.vCodes, bytes.vt)
            params.vScale = try addr(.vScales, bytes.vScale)
        }

        func quantizationParams(
            _ tensor: DeviceTensor, heads: Int, tokens: Int, padded: Int, codes: UInt64, scales: UInt64,
            stats: (mean: UInt64, amax: UInt64), multiplier: Float
        ) -> QuantizationParams {
            var p = QuantizationParams()
            p.input = tensor.address
            p.codes = codes
            p.scales = scales
            p.channelMean = stats.mean
            p.channelAmax = stats.amax
            (p.batch, p.heads, p.tokens, p.headDim, p.tokensPadded) = (Int64(b), Int64(heads), Int64(tokens), Int64(d), Int64(padded))
            (p.strideBatch, p.strideHead, p.strideToken) = Self.strides(tensor.strides)
            p.scaleMultiplier = multiplier
            return p
        }
        let qp = quantizationParams(q, heads: h, tokens: nq, padded: nq, codes: params.q, scales: params.qScale, stats: statsQ, multiplier: smL)
        let kp = quantizationParams(k, heads: hkv, tokens: nk, padded: nkPad, codes: params.k, scales: params.kScale, stats: statsK, multiplier: 1)
        let vp = quantizationParams(v, heads: hkv, tokens: nk, padded: nkPad, codes: params.v, scales: params.vScale, stats: statsV, multiplier: 1)

        func make(_ kind: QuantizationKernelDescriptor.Kind) -> QuantizationKernelDescriptor {
            QuantizationKernelDescriptor(kind: kind, input: input, arch: architecture)
        }
        // Channel statistics: K's mean for smoothing, V's amax for its scales, and every
        // tensor's amax for the per-tensor FP8 scales.
        var statistics: [QuantizationParams] = [vp]
        if method == .int8 || method == .fp8E4M3 { statistics.append(kp) }
        if method == .fp8E4M3 { statistics.append(qp) }
        // One partials buffer, sized once for the largest tensor (they run in order on the
        // stream; growing it between launches would free memory a queued kernel still reads).
        let chunks = { (p: QuantizationParams) in (Int(p.tokens) + QuantizationKernelDescriptor.statsChunkTokens - 1) / QuantizationKernelDescriptor.statsChunkTokens }
        let partialsBytes = statistics.map { b * Int($0.heads) * max(chunks($0), 1) * d * 12 }.max() ?? 0
        let partials = try addr(.statsPartials, partialsBytes)
        for var p in statistics {
            p.channelPartials = partials
            p.statsChunks = Int64(chunks(p))
            let heads = Int(p.heads)
            if p.statsChunks > 0 {
                try launch(make(.channelPartials), grid: LaunchDimensions((d + 31) / 32, Self.gridLimited(Int(p.statsChunks)), Self.gridLimited(b * heads)),
                           block: LaunchDimensions(32, 8), params: p)
            }
            try launch(make(.channelStats), grid: LaunchDimensions((d + 31) / 32, Self.gridLimited(b * heads)), block: LaunchDimensions(32), params: p)
        }
        let rowsPerCTA = QuantizationKernelDescriptor.rowsPerCTA
        if nq > 0 {
            try launch(make(.rows(code, perTensor: perTensor, smooth: false)),
                       grid: LaunchDimensions((nq + rowsPerCTA - 1) / rowsPerCTA, Self.gridLimited(b * h)), block: LaunchDimensions(256), params: qp)
        }
        try launch(make(.rows(code, perTensor: perTensor, smooth: method == .int8)),
                   grid: LaunchDimensions((nkPad + rowsPerCTA - 1) / rowsPerCTA, Self.gridLimited(b * hkv)), block: LaunchDimensions(256), params: kp)
        try launch(make(.transposedV(code, perTensor: method != .int8)),
                   grid: LaunchDimensions(nkPad / 64, (d + 63) / 64, Self.gridLimited(b * hkv)), block: LaunchDimensions(256), params: vp)

        (params.qStrideBatch, params.qStrideHead, params.qStrideToken) = (Int64(h * nq * d), Int64(nq * d), Int64(d))
        (params.kStrideBatch, params.kStrideHead, params.kStrideToken) = (Int64(hkv * nk * d), Int64(nk * d), Int64(d))
        (params.vStrideBatch, params.vStrideHead, params.vStrideRow) = (Int64(hkv * d * nkPad), Int64(d * nkPad), Int64(nkPad))
        return params
    }

    /// `tensor` itself when it is fp16, else an fp16 copy in the workspace.
    private func halfTensor(
        _ tensor: DeviceTensor, heads: Int, tokens: Int, problem: AttentionProblem, slot: WorkspaceSlot
    ) throws(AttentionError) -> DeviceTensor {
        guard tensor.elementType == .bfloat16 else { return tensor }
        let count = problem.batch * heads * tokens * problem.headDim
        let address = try cuda { () throws(CUDAError) in try workspace.address(slot, byteCount: count * 2) }
        var p = QuantizationParams()
        p.input = tensor.address
        p.codes = address
        (p.batch, p.heads, p.tokens, p.headDim) = (Int64(problem.batch), Int64(heads), Int64(tokens), Int64(problem.headDim))
        (p.strideBatch, p.strideHead, p.strideToken) = Self.strides(tensor.strides)
        if count > 0 {
            try launch(QuantizationKernelDescriptor(kind: .convertToHalf, input: .bfloat16, arch: architecture),
                       grid: LaunchDimensions(min((count + 255) / 256, 65_535)), block: LaunchDimensions(256), params: p)
        }
        return DeviceTensor(address: address, elementType: .float16, layout: .bhnd, heads: heads, tokens: tokens, headDim: problem.headDim)
    }

    private static func kernelInput(_ type: ElementType) throws(AttentionError) -> AttentionKernelDescriptor.Output {
        switch type {
        case .float16: return .float16
        case .bfloat16: return .bfloat16
        case .float32: throw .unsupportedMethod(method: "any", backend: "cuda", reason: "inputs must be fp16 or bf16 on the GPU")
        }
    }

    /// A grid y or z extent: the quantization kernels loop over what lies beyond 65535.
    static func gridLimited(_ count: Int) -> Int { min(count, 65_535) }

    static func strides(_ s: TensorStrides) -> (Int64, Int64, Int64) {
        (Int64(s.batch), Int64(s.head), Int64(s.token))
    }

    static let log2e: Float = 1.442_695_04
}
