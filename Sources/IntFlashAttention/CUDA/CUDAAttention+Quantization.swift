import CUDADriver

/// The quantization pipeline: fp16/bf16 device tensors → the codes and scales of
/// docs/SCHEMES.md in the workspace (or the caller's buffers), by the kernels of
/// `Kernels/quantize.cu`.
extension CUDAAttention {

    /// What ``prepareInputs(_:q:k:v:destination:statistics:rawQuery:call:)`` leaves for the
    /// attention kernel: its parameters, and where K's measured channel mean lies (`int8`,
    /// for the exact log-sum-exp; nil when the call did not measure it).
    struct PreparedInputs {
        var params: AttentionParams
        var keyMean: UInt64?
    }

    /// Runs `plan`'s kernels (``QuantizationPlan``: channel statistics, then Q, K and V codes,
    /// or for `fp16` the screen alone) and returns the attention parameters that read their
    /// results. With `rawQuery` (a kernel that quantizes Q itself) Q is left alone: the
    /// parameters point at its values and strides, and the kernel writes Q's row marks.
    func prepareInputs(
        _ plan: QuantizationPlan, q: DeviceTensor, k: DeviceTensor, v: DeviceTensor,
        destination: QuantizedDeviceInputs? = nil, statistics: ChannelStatistics? = nil, rawQuery: Bool = false,
        call: CallResources
    ) throws(AttentionError) -> PreparedInputs {
        // The callers have run validateInputs (element types, alignment, strides).
        let problem = plan.problem
        let b = problem.batch, h = problem.heads, hkv = problem.kvHeads, d = problem.headDim
        let nq = problem.queryLength, nk = problem.keyLength
        let nkPad = QuantizedDeviceInputs.paddedKeyLength(nk)

        let slots = try workspaceAddresses(plan.workspaceRequests, lent: call.workspace)
        func addr(_ slot: WorkspaceSlot) -> UInt64 { slots[slot] ?? 0 }
        // No batch entries: nothing to read or write, and no grid may have an extent of 0.
        if b == 0 { return PreparedInputs(params: Self.addresses(of: slots, destination: destination), keyMean: nil) }
        if plan.screensOnly {
            var params = AttentionParams()
            (params.rowMarks, params.keyMarks) = (addr(.rowMarks), addr(.keyMarks))
            try clearKeyMarks(params.keyMarks, count: b * hkv, on: call.stream)
            let (qf, kf, vf) = try (
                screened(q, heads: h, tokens: nq, problem: problem, copy: slots[.qCodes], marks: (params.rowMarks, 0), on: call.stream),
                screened(k, heads: hkv, tokens: nk, problem: problem, copy: slots[.kCodes], marks: (0, params.keyMarks), on: call.stream),
                screened(v, heads: hkv, tokens: nk, problem: problem, copy: slots[.vCodes], marks: (0, params.keyMarks), on: call.stream))
            (params.q, params.k, params.v) = (qf.address, kf.address, vf.address)
            (params.qStrideBatch, params.qStrideHead, params.qStrideToken) = Self.strides(qf.strides)
            (params.kStrideBatch, params.kStrideHead, params.kStrideToken) = Self.strides(kf.strides)
            (params.vStrideBatch, params.vStrideHead, params.vStrideRow) = Self.strides(vf.strides)
            return PreparedInputs(params: params, keyMean: nil)
        }

        let input = try Self.kernelInput(q.elementType)
        guard k.elementType == q.elementType, v.elementType == q.elementType else {
            throw .shapeMismatch(tensor: "K/V", expected: "the element type of Q (\(q.elementType))", actual: "\(k.elementType)/\(v.elementType)")
        }
        var params = Self.addresses(of: slots, destination: destination)
        (params.rowMarks, params.keyMarks) = QuantizedDeviceInputs(params, method: plan.method).markAddresses(problem: problem)
        try clearKeyMarks(params.keyMarks, count: b * hkv, on: call.stream)

        // One parameter block per operand: its tensor, its codes and scales, its statistics
        // (measured into the workspace, or the caller's K mean and V amax).
        func quantizationParams(_ operand: QuantizationPlan.Operand) -> QuantizationParams {
            let (tensor, codes, scales): (DeviceTensor, UInt64, UInt64) = switch operand {
            case .query: (q, params.q, params.qScale)
            case .key: (k, params.k, params.kScale)
            case .value: (v, params.v, params.vScale)
            }
            let (slices, tokens) = plan.extent(of: operand)
            let slots = QuantizationPlan.statisticsSlots(of: operand)
            var p = QuantizationParams()
            p.input = tensor.address
            p.codes = codes
            p.scales = scales
            p.channelMean = operand == .key ? statistics?.keyMean ?? addr(slots.mean) : addr(slots.mean)
            p.channelAmax = operand == .value ? statistics?.valueAmax ?? addr(slots.amax) : addr(slots.amax)
            (p.batch, p.heads, p.tokens, p.headDim) = (Int64(b), Int64(slices / b), Int64(tokens), Int64(d))
            p.tokensPadded = Int64(operand == .query ? nq : nkPad)
            (p.strideBatch, p.strideHead, p.strideToken) = Self.strides(tensor.strides)
            p.scaleMultiplier = operand == .query ? problem.softmaxScale * Self.log2e : 1
            if operand == .query { p.rowMarks = params.rowMarks } else { p.keyMarks = params.keyMarks }
            return p
        }
        func make(_ kind: QuantizationKernelDescriptor.Kind) -> QuantizationKernelDescriptor {
            QuantizationKernelDescriptor(kind: kind, input: input, arch: architecture)
        }

        for operand in plan.measured {
            var p = quantizationParams(operand)
            p.channelPartials = addr(.statsPartials)
            p.statsChunks = Int64(QuantizationPlan.statisticsChunks(tokens: Int(p.tokens)))
            let slices = Self.gridLimited(b * Int(p.heads))
            if p.statsChunks > 0 {
                try launch(make(.channelPartials), grid: LaunchDimensions((d + 31) / 32, Self.gridLimited(Int(p.statsChunks)), slices),
                           block: LaunchDimensions(32, 8), params: p, on: call.stream)
            }
            try launch(make(.channelStats), grid: LaunchDimensions((d + 31) / 32, slices), block: LaunchDimensions(32), params: p, on: call.stream)
        }
        for operand in QuantizationPlan.Operand.allCases {
            guard let kind = plan.kernel(for: operand), !(operand == .query && (rawQuery || nq == 0)) else { continue }
            let p = quantizationParams(operand)
            let slices = Self.gridLimited(b * Int(p.heads))
            let tiles: LaunchDimensions = switch kind {
            case .keyGroups: LaunchDimensions(nkPad / KeyGroups.tileKeys, slices)
            case .transposedV: LaunchDimensions(nkPad / 64, (d + 63) / 64, slices)
            default: LaunchDimensions(
                (Int(p.tokensPadded) + QuantizationKernelDescriptor.rowsPerCTA - 1) / QuantizationKernelDescriptor.rowsPerCTA, slices)
            }
            try launch(make(kind), grid: tiles, block: LaunchDimensions(256), params: p, on: call.stream)
        }

        (params.qStrideBatch, params.qStrideHead, params.qStrideToken) = (Int64(h * nq * d), Int64(nq * d), Int64(d))
        (params.kStrideBatch, params.kStrideHead, params.kStrideToken) = (Int64(hkv * nk * d), Int64(nk * d), Int64(d))
        (params.vStrideBatch, params.vStrideHead, params.vStrideRow) = (Int64(hkv * d * nkPad), Int64(d * nkPad), Int64(nkPad))
        if rawQuery {
            (params.q, params.qScale) = (q.address, 0)
            (params.qStrideBatch, params.qStrideHead, params.qStrideToken) = Self.strides(q.strides)
        }
        return PreparedInputs(params: params, keyMean: plan.measuresKeyMean ? addr(.kMean) : nil)
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

    /// Device memory a caller must lend ``forward(_:problem:q:k:v:output:logSumExp:stream:workspace:options:)``
    /// (or ``quantize(_:problem:q:k:v:into:statistics:stream:workspace:)`` without a destination) for
    /// `problem` with inputs of `inputType`. 0 when the call needs none.
    public static func workspaceByteCount(_ method: AttentionMethod, problem: AttentionProblem, inputType: ElementType) -> Int {
        DeviceWorkspace.byteCount(for: QuantizationPlan(method, problem: problem, inputType: inputType).workspaceRequests)
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
