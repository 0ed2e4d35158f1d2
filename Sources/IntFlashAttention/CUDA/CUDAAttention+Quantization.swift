import CUDADriver

/// The quantization pipeline: fp16/bf16 device tensors → the codes and scales of
/// docs/SCHEMES.md in the workspace (or the caller's buffers), by the kernels of
/// `Kernels/quantize.cu`.
extension CUDAAttention {

    /// Runs `method`'s quantization kernels (or none, for fp16 inputs of `fp16`) and returns
    /// the attention parameters that read their results. With `rawQuery` (an `int8` kernel
    /// that quantizes Q itself) Q is left alone: the parameters point at its values and
    /// strides, and the kernel writes Q's row marks.
    func prepareInputs(
        _ method: AttentionMethod, problem: AttentionProblem, q: DeviceTensor, k: DeviceTensor, v: DeviceTensor,
        destination: QuantizedDeviceInputs? = nil, statistics: ChannelStatistics? = nil, rawQuery: Bool = false,
        call: CallResources
    ) throws(AttentionError) -> AttentionParams {
        // The callers have run validateInputs (element types, alignment, strides).
        let b = problem.batch, h = problem.heads, hkv = problem.kvHeads, d = problem.headDim
        let nq = problem.queryLength, nk = problem.keyLength
        let nkPad = QuantizedDeviceInputs.paddedKeyLength(nk)
        let smL = problem.softmaxScale * Self.log2e

        let slots = try workspaceAddresses(
            Self.workspaceRequests(method, problem: problem, inputType: q.elementType, quantizedInto: destination != nil),
            lent: call.workspace)
        // No batch entries: nothing to read or write, and no grid may have an extent of 0.
        if b == 0 { return Self.addresses(of: slots, destination: destination) }
        if method == .fp16 {
            var params = AttentionParams()
            (params.rowMarks, params.keyMarks) = (slots[.rowMarks] ?? 0, slots[.keyMarks] ?? 0)
            try clearKeyMarks(params.keyMarks, count: b * hkv, on: call.stream)
            let (qf, kf, vf) = try (
                screened(q, heads: h, tokens: nq, problem: problem, copy: slots[.qCodes], marks: (params.rowMarks, 0), on: call.stream),
                screened(k, heads: hkv, tokens: nk, problem: problem, copy: slots[.kCodes], marks: (0, params.keyMarks), on: call.stream),
                screened(v, heads: hkv, tokens: nk, problem: problem, copy: slots[.vCodes], marks: (0, params.keyMarks), on: call.stream))
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
        func addr(_ slot: WorkspaceSlot) -> UInt64 { slots[slot] ?? 0 }
        let statsQ = (mean: addr(.qMean), amax: addr(.qAmax))
        let statsK = (mean: statistics?.keyMean ?? addr(.kMean), amax: addr(.kAmax))
        let statsV = (mean: addr(.vMean), amax: statistics?.valueAmax ?? addr(.vAmax))
        var params = AttentionParams()
        if let destination {
            (params.q, params.qScale, params.k) = (destination.q, destination.qScale, destination.k)
            (params.kScale, params.v, params.vScale) = (destination.kScale, destination.vt, destination.vScale)
        } else {
            (params.q, params.qScale, params.k) = (addr(.qCodes), addr(.qScales), addr(.kCodes))
            (params.kScale, params.v, params.vScale) = (addr(.kScales), addr(.vCodes), addr(.vScales))
        }
        (params.rowMarks, params.keyMarks) = QuantizedDeviceInputs(params, method: method).markAddresses(problem: problem)
        try clearKeyMarks(params.keyMarks, count: b * hkv, on: call.stream)

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
        var qp = quantizationParams(q, heads: h, tokens: nq, padded: nq, codes: params.q, scales: params.qScale, stats: statsQ, multiplier: smL)
        var kp = quantizationParams(k, heads: hkv, tokens: nk, padded: nkPad, codes: params.k, scales: params.kScale, stats: statsK, multiplier: 1)
        var vp = quantizationParams(v, heads: hkv, tokens: nk, padded: nkPad, codes: params.v, scales: params.vScale, stats: statsV, multiplier: 1)
        qp.rowMarks = params.rowMarks
        (kp.keyMarks, vp.keyMarks) = (params.keyMarks, params.keyMarks)

        func make(_ kind: QuantizationKernelDescriptor.Kind) -> QuantizationKernelDescriptor {
            QuantizationKernelDescriptor(kind: kind, input: input, arch: architecture)
        }
        // Channel statistics: K's mean for smoothing, V's amax for its scales, and every
        // tensor's amax for the per-tensor FP8 scales.
        // Given statistics replace K's and V's (int8 schemes only, checked by the callers).
        var measured: [QuantizationParams] = statistics == nil ? [vp] : []
        if (method == .int8 && statistics == nil) || method == .fp8E4M3 { measured.append(kp) }
        if method == .fp8E4M3 { measured.append(qp) }
        // One partials buffer, sized for the largest tensor (they run in order on the stream).
        let chunks = { (p: QuantizationParams) in Self.statsChunks(tokens: Int(p.tokens)) }
        let partials = addr(.statsPartials)
        for var p in measured {
            p.channelPartials = partials
            p.statsChunks = Int64(chunks(p))
            let heads = Int(p.heads)
            if p.statsChunks > 0 {
                try launch(make(.channelPartials), grid: LaunchDimensions((d + 31) / 32, Self.gridLimited(Int(p.statsChunks)), Self.gridLimited(b * heads)),
                           block: LaunchDimensions(32, 8), params: p, on: call.stream)
            }
            try launch(make(.channelStats), grid: LaunchDimensions((d + 31) / 32, Self.gridLimited(b * heads)), block: LaunchDimensions(32), params: p, on: call.stream)
        }
        let rowsPerCTA = QuantizationKernelDescriptor.rowsPerCTA
        if nq > 0 && !rawQuery {
            try launch(make(.rows(code, perTensor: perTensor)),
                       grid: LaunchDimensions((nq + rowsPerCTA - 1) / rowsPerCTA, Self.gridLimited(b * h)), block: LaunchDimensions(256), params: qp, on: call.stream)
        }
        if method == .int8 {
            try launch(make(.keyGroups), grid: LaunchDimensions(nkPad / KeyGroups.tileKeys, Self.gridLimited(b * hkv)),
                       block: LaunchDimensions(256), params: kp, on: call.stream)
        } else {
            try launch(make(.rows(code, perTensor: perTensor)),
                       grid: LaunchDimensions((nkPad + rowsPerCTA - 1) / rowsPerCTA, Self.gridLimited(b * hkv)), block: LaunchDimensions(256), params: kp, on: call.stream)
        }
        try launch(make(.transposedV(code, perTensor: method != .int8)),
                   grid: LaunchDimensions(nkPad / 64, (d + 63) / 64, Self.gridLimited(b * hkv)), block: LaunchDimensions(256), params: vp, on: call.stream)

        (params.qStrideBatch, params.qStrideHead, params.qStrideToken) = (Int64(h * nq * d), Int64(nq * d), Int64(d))
        (params.kStrideBatch, params.kStrideHead, params.kStrideToken) = (Int64(hkv * nk * d), Int64(nk * d), Int64(d))
        (params.vStrideBatch, params.vStrideHead, params.vStrideRow) = (Int64(hkv * d * nkPad), Int64(d * nkPad), Int64(nkPad))
        if rawQuery {
            (params.q, params.qScale) = (q.address, 0)
            (params.qStrideBatch, params.qStrideHead, params.qStrideToken) = Self.strides(q.strides)
        }
        return params
    }

    /// The parameters of an empty problem: the buffers' addresses, nothing quantized.
    private static func addresses(of slots: [WorkspaceSlot: UInt64], destination: QuantizedDeviceInputs?) -> AttentionParams {
        var params = AttentionParams()
        if let destination {
            (params.q, params.qScale, params.k) = (destination.q, destination.qScale, destination.k)
            (params.kScale, params.v, params.vScale) = (destination.kScale, destination.vt, destination.vScale)
        } else {
            (params.q, params.qScale, params.k) = (slots[.qCodes] ?? 0, slots[.qScales] ?? 0, slots[.kCodes] ?? 0)
            (params.kScale, params.v, params.vScale) = (slots[.kScales] ?? 0, slots[.vCodes] ?? 0, slots[.vScales] ?? 0)
        }
        return params
    }

    /// Sets the first offending key of each of `count` (batch, KV head) slices to "none"
    /// (0x7FFFFFFF) before the kernels that lower it.
    private func clearKeyMarks(_ address: UInt64, count: Int, on stream: CUDAStream) throws(AttentionError) {
        try cuda { () throws(CUDAError) in try stream.fill(address: address, words: count, value: 0x7FFF_FFFF) }
    }

    /// Runs the fp16 method's screen over `tensor`, writing `marks` (row, key; 0 for none), and
    /// returns `tensor` itself when it is fp16, else the fp16 copy (offending elements zeroed)
    /// that the screen wrote at `copy` (its workspace slot).
    private func screened(
        _ tensor: DeviceTensor, heads: Int, tokens: Int, problem: AttentionProblem, copy: UInt64?,
        marks: (row: UInt64, key: UInt64), on stream: CUDAStream
    ) throws(AttentionError) -> DeviceTensor {
        let converts = tensor.elementType == .bfloat16
        var p = QuantizationParams()
        p.input = tensor.address
        p.codes = converts ? copy ?? 0 : 0
        (p.rowMarks, p.keyMarks) = marks
        (p.batch, p.heads, p.tokens, p.headDim) = (Int64(problem.batch), Int64(heads), Int64(tokens), Int64(problem.headDim))
        (p.strideBatch, p.strideHead, p.strideToken) = Self.strides(tensor.strides)
        if tokens > 0 {
            try launch(QuantizationKernelDescriptor(kind: .screenRows, input: try Self.kernelInput(tensor.elementType), arch: architecture),
                       grid: LaunchDimensions(Self.gridLimited((tokens * problem.headDim + 8191) / 8192), Self.gridLimited(problem.batch * heads)),
                       block: LaunchDimensions(256), params: p, on: stream)
        }
        guard converts, let copy else { return tensor }
        return DeviceTensor(address: copy, elementType: .float16, layout: .bhnd, heads: heads, tokens: tokens, headDim: problem.headDim)
    }

    static func kernelInput(_ type: ElementType) throws(AttentionError) -> KernelFloatType {
        guard let input = KernelFloatType(type) else {
            throw .unsupportedMethod(method: "any", backend: "cuda", reason: "inputs must be fp16 or bf16 on the GPU")
        }
        return input
    }

    /// The workspace slots (and their sizes in bytes) that preparing `method`'s inputs uses:
    /// the marks of offending inputs and fp16 copies of bf16 inputs for `fp16`; otherwise
    /// channel statistics, the partial sums behind them, and the codes and scales unless they
    /// go to the caller's buffers.
    static func workspaceRequests(
        _ method: AttentionMethod, problem: AttentionProblem, inputType: ElementType, quantizedInto destination: Bool
    ) -> [(WorkspaceSlot, Int)] {
        let b = problem.batch, h = problem.heads, hkv = problem.kvHeads, d = problem.headDim
        let nq = problem.queryLength, nk = problem.keyLength
        if method == .fp16 {
            let marks: [(WorkspaceSlot, Int)] = [(.rowMarks, b * h * nq), (.keyMarks, b * hkv * 4)]
            guard inputType == .bfloat16 else { return marks }
            return marks + [(.qCodes, b * h * nq * d * 2), (.kCodes, b * hkv * nk * d * 2), (.vCodes, b * hkv * nk * d * 2)]
        }
        var requests: [(WorkspaceSlot, Int)] = [
            (.qMean, b * h * d * 4), (.qAmax, b * h * d * 4), (.kMean, b * hkv * d * 4),
            (.kAmax, b * hkv * d * 4), (.vMean, b * hkv * d * 4), (.vAmax, b * hkv * d * 4),
        ]
        if !destination {
            let bytes = QuantizedDeviceInputs.byteCounts(method: method, problem: problem)
            requests += [(.qCodes, bytes.q), (.qScales, bytes.qScale), (.kCodes, bytes.k),
                         (.kScales, bytes.kScale), (.vCodes, bytes.vt), (.vScales, bytes.vScale)]
        }
        // Statistics of V always, of K for int8 and fp8, of Q for fp8: fp64 sums and fp32 maxima.
        var tensors = [(hkv, nk)]
        if method == .int8 || method == .fp8E4M3 { tensors.append((hkv, nk)) }
        if method == .fp8E4M3 { tensors.append((h, nq)) }
        let partials = tensors.map { b * $0.0 * max(statsChunks(tokens: $0.1), 1) * d * 12 }.max() ?? 0
        requests.append((.statsPartials, partials))
        return requests
    }

    /// Chunks of the channel-statistics partial sums for `tokens` tokens.
    static func statsChunks(tokens: Int) -> Int {
        (tokens + QuantizationKernelDescriptor.statsChunkTokens - 1) / QuantizationKernelDescriptor.statsChunkTokens
    }

    /// Device memory a caller must lend ``forward(_:problem:q:k:v:output:logSumExp:stream:workspace:)``
    /// (or ``quantize(_:problem:q:k:v:into:stream:workspace:)`` without a destination) for
    /// `problem` with inputs of `inputType`. 0 when the call needs none.
    public static func workspaceByteCount(_ method: AttentionMethod, problem: AttentionProblem, inputType: ElementType) -> Int {
        DeviceWorkspace.byteCount(for: workspaceRequests(method, problem: problem, inputType: inputType, quantizedInto: false))
    }

    /// Addresses for `requests`: in the caller's `lent` workspace when the call has one, else
    /// in this instance's own (grown as needed).
    func workspaceAddresses(_ requests: [(WorkspaceSlot, Int)], lent: DeviceWorkspace?) throws(AttentionError) -> [WorkspaceSlot: UInt64] {
        if let lent { return try lent.addresses(for: requests) }
        var result: [WorkspaceSlot: UInt64] = [:]
        for (slot, bytes) in requests {
            result[slot] = try cuda { () throws(CUDAError) in try workspace.address(slot, byteCount: bytes) }
        }
        return result
    }

    /// A grid y or z extent: the quantization kernels loop over what lies beyond 65535.
    static func gridLimited(_ count: Int) -> Int { min(count, 65_535) }

    static func strides(_ s: TensorStrides) -> (Int64, Int64, Int64) {
        (Int64(s.batch), Int64(s.head), Int64(s.token))
    }

    static let log2e: Float = 1.442_695_04
}
