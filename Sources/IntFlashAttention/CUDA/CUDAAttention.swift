import CUDADriver
import Foundation

/// FlashAttention forward on one CUDA device, with the kernels of `Kernels/*.cu` compiled
/// for the device's exact architecture on first use.
///
/// Three ways in: ``forward(_:problem:q:k:v:output:logSumExp:)`` on device tensors the
/// caller owns (fp16/bf16 in, quantization inside), ``forward(quantized:problem:output:logSumExp:)``
/// on already-quantized INT8 tensors, and ``run(_:problem:q:k:v:computeLogSumExp:validateInputs:)``
/// on host tensors. Calls on one instance are serialized; they are ordered on ``stream``.
public final class CUDAAttention: @unchecked Sendable {
    public let context: CUDAContext
    /// The architecture kernels are compiled for, e.g. `sm_90`.
    public let architecture: String
    /// The stream every call is issued on.
    public let stream: CUDAStream
    private let cache: KernelCache
    // `lock` guards everything below and serializes calls (they share the workspace).
    private let lock = NSLock()
    private var loaded: [String: (module: CUDAModule, function: CUDAFunction)] = [:]
    private let workspace: AttentionWorkspace
    private var requestedFamily: AttentionKernelFamily?

    /// Opens device `device`; `cache` defaults to NVRTC with the on-disk cache. `kernelFamily`
    /// forces the wgmma or the mma kernels (default: `INTFA_KERNEL`, else chosen per problem).
    public init(device: Int = 0, cache: KernelCache? = nil, kernelFamily: AttentionKernelFamily? = nil) throws(AttentionError) {
        if let kernelFamily {
            requestedFamily = kernelFamily
        } else {
            requestedFamily = try AttentionKernelFamily.fromEnvironment(ProcessInfo.processInfo.environment)
        }
        do throws(CUDAError) {
            context = try CUDAContext(device: device)
            architecture = context.properties.computeCapability.architecture
            stream = try CUDAStream(context: context)
            if let cache { self.cache = cache } else { self.cache = try KernelCache() }
        } catch {
            throw AttentionError(error)
        }
        workspace = AttentionWorkspace(context: context)
    }

    /// The family every call uses, or nil to choose per problem (wgmma for `int8` at D = 64
    /// and 128 on compute capability 9.0, mma otherwise). Setting a family that cannot run a
    /// later call's problem makes that call throw.
    public var kernelFamily: AttentionKernelFamily? {
        get { lock.withLock { requestedFamily } }
        set { lock.withLock { requestedFamily = newValue } }
    }

    /// The architecture the wgmma kernels compile for on this device (`sm_90a` on compute
    /// capability 9.0), or the device's plain architecture where they do not apply.
    public var featureArchitecture: String { architecture == "sm_90" ? "sm_90a" : architecture }

    /// The family that runs `method` at `headDim` on this device under the current setting.
    public func family(for method: AttentionMethod, headDim: Int) throws(AttentionError) -> AttentionKernelFamily {
        try AttentionKernelFamily.select(method: method, headDim: headDim, arch: featureArchitecture, requested: kernelFamily)
    }

    /// Methods with a GPU kernel on this device.
    public var methods: [AttentionMethod] {
        AttentionKernelDescriptor.methods.filter {
            (try? AttentionKernelDescriptor(method: $0, headDim: 64, causal: false, arch: architecture)) != nil
        }
    }

    // MARK: - Device tensors

    /// Attention on fp16/bf16 device tensors, quantizing inside with `method`'s scheme.
    /// `output` must be fp16 or bf16; `logSumExp`, when given, receives fp32 [B, H, Nq]
    /// natural-log values. Inputs are not checked for NaN/Inf. Returns once the work is
    /// issued on ``stream``.
    public func forward(
        _ method: AttentionMethod, problem: AttentionProblem,
        q: DeviceTensor, k: DeviceTensor, v: DeviceTensor, output: DeviceTensor, logSumExp: UInt64? = nil
    ) throws(AttentionError) {
        try problem.validate()
        guard problem.queryLength > 0 else { return }
        try serialized { () throws(AttentionError) in
            let kernel = try attentionKernel(method, problem: problem, output: output, logSumExp: logSumExp)
            var params = try prepareInputs(method, problem: problem, q: q, k: k, v: v)
            try launchAttention(kernel, problem: problem, params: &params, output: output, logSumExp: logSumExp)
        }
    }

    /// Attention on INT8 inputs already in the layout of docs/SCHEMES.md.
    public func forward(
        quantized inputs: QuantizedDeviceInputs, problem: AttentionProblem,
        output: DeviceTensor, logSumExp: UInt64? = nil
    ) throws(AttentionError) {
        try problem.validate()
        guard inputs.method != .fp16 else {
            throw .unsupportedMethod(method: inputs.method.rawValue, backend: "cuda", reason: "fp16 has no quantized form")
        }
        guard problem.queryLength > 0 else { return }
        try serialized { () throws(AttentionError) in
            let kernel = try attentionKernel(inputs.method, problem: problem, output: output, logSumExp: logSumExp)
            var params = quantizedParams(inputs, problem: problem)
            try launchAttention(kernel, problem: problem, params: &params, output: output, logSumExp: logSumExp)
        }
    }

    /// Quantizes fp16/bf16 device tensors with `method`'s scheme (INT8 or FP8) and returns
    /// them in the pre-quantized form: into `destination`'s buffers when given (sized by
    /// ``QuantizedDeviceInputs/byteCounts(method:problem:)``), else into this instance's
    /// workspace, valid until its next call.
    public func quantize(
        _ method: AttentionMethod, problem: AttentionProblem, q: DeviceTensor, k: DeviceTensor, v: DeviceTensor,
        into destination: QuantizedDeviceInputs? = nil
    ) throws(AttentionError) -> QuantizedDeviceInputs {
        try problem.validate()
        guard method != .fp16 else {
            throw .unsupportedMethod(method: method.rawValue, backend: "cuda", reason: "fp16 has no quantized form")
        }
        return try serialized { () throws(AttentionError) in
            let params = try prepareInputs(method, problem: problem, q: q, k: k, v: v, destination: destination)
            return QuantizedDeviceInputs(
                method: method, q: params.q, qScale: params.qScale, k: params.k, kScale: params.kScale,
                vt: params.v, vScale: params.vScale)
        }
    }

    /// Runs `body` holding the instance's lock.
    private func serialized<T>(_ body: () throws(AttentionError) -> T) throws(AttentionError) -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }

    // MARK: - Kernels

    /// The attention kernel of one call: a wgmma or an mma variant.
    private enum AttentionKernel {
        case wgmma(HopperKernelDescriptor)
        case mma(AttentionKernelDescriptor)
    }

    private func attentionKernel(
        _ method: AttentionMethod, problem: AttentionProblem, output: DeviceTensor, logSumExp: UInt64?
    ) throws(AttentionError) -> AttentionKernel {
        let outputType: AttentionKernelDescriptor.Output
        switch output.elementType {
        case .float16: outputType = .float16
        case .bfloat16: outputType = .bfloat16
        case .float32: throw .unsupportedMethod(method: method.rawValue, backend: "cuda", reason: "the output must be fp16 or bf16")
        }
        let family = try AttentionKernelFamily.select(
            method: method, headDim: problem.headDim, arch: featureArchitecture, requested: requestedFamily)
        switch family {
        case .wgmma:
            return .wgmma(try HopperKernelDescriptor(
                headDim: problem.headDim, causal: problem.causal, output: outputType,
                writesLogSumExp: logSumExp != nil, arch: featureArchitecture))
        case .mma:
            return .mma(try AttentionKernelDescriptor(
                method: method, headDim: problem.headDim, causal: problem.causal, output: outputType,
                writesLogSumExp: logSumExp != nil, arch: architecture))
        }
    }

    /// The loaded function of `variant`, compiling (or reading the disk cache) on first use.
    func function(_ variant: some KernelVariant) throws(AttentionError) -> CUDAFunction {
        if let entry = loaded[variant.kernelName] { return entry.function }
        let request = try variant.compilationRequest()
        return try cuda { () throws(CUDAError) in
            let module = try cache.kernel(for: request).load(into: context)
            let function = try module.function(named: variant.kernelName)
            if variant.sharedMemoryBytes > 48 * 1024 {
                try function.setMaxDynamicSharedMemory(bytes: variant.sharedMemoryBytes)
            }
            loaded[variant.kernelName] = (module, function)
            return function
        }
    }

    func launch<Params: BitwiseCopyable>(
        _ variant: some KernelVariant, grid: LaunchDimensions, block: LaunchDimensions, params: Params
    ) throws(AttentionError) {
        let function = try function(variant)
        try cuda { () throws(CUDAError) in
            try stream.launch(
                function, grid: grid, block: block, sharedMemoryBytes: variant.sharedMemoryBytes,
                arguments: [KernelStruct(params)])
        }
    }

    private func launchAttention(
        _ kernel: AttentionKernel, problem: AttentionProblem, params: inout AttentionParams,
        output: DeviceTensor, logSumExp: UInt64?
    ) throws(AttentionError) {
        params.out = output.address
        params.lse = logSumExp ?? 0
        params.batch = Int64(problem.batch)
        params.heads = Int64(problem.heads)
        params.kvHeads = Int64(problem.kvHeads)
        params.queryLength = Int64(problem.queryLength)
        params.keyLength = Int64(problem.keyLength)
        params.keyLengthPadded = Int64(QuantizedDeviceInputs.paddedKeyLength(problem.keyLength))
        (params.oStrideBatch, params.oStrideHead, params.oStrideToken) = Self.strides(output.strides)
        params.softmaxScaleLog2 = problem.softmaxScale * Self.log2e
        switch kernel {
        case .wgmma(let kernel):
            let grid = kernel.grid(for: problem)
            let hopperParams = try HopperAttentionParams(params, headDim: problem.headDim, context: context)
            try launch(kernel, grid: LaunchDimensions(grid.x, grid.y, grid.z), block: LaunchDimensions(kernel.threadsPerBlock), params: hopperParams)
        case .mma(let kernel):
            let grid = kernel.grid(for: problem)
            try launch(kernel, grid: LaunchDimensions(grid.x, grid.y, grid.z), block: LaunchDimensions(kernel.threadsPerBlock), params: params)
        }
    }

    private func quantizedParams(_ inputs: QuantizedDeviceInputs, problem: AttentionProblem) -> AttentionParams {
        let d = Int64(problem.headDim), nq = Int64(problem.queryLength), nk = Int64(problem.keyLength)
        let nkPad = Int64(QuantizedDeviceInputs.paddedKeyLength(problem.keyLength))
        var params = AttentionParams()
        params.q = inputs.q
        params.k = inputs.k
        params.v = inputs.vt
        params.qScale = inputs.qScale
        params.kScale = inputs.kScale
        params.vScale = inputs.vScale
        (params.qStrideBatch, params.qStrideHead, params.qStrideToken) = (Int64(problem.heads) * nq * d, nq * d, d)
        (params.kStrideBatch, params.kStrideHead, params.kStrideToken) = (Int64(problem.kvHeads) * nk * d, nk * d, d)
        (params.vStrideBatch, params.vStrideHead, params.vStrideRow) = (Int64(problem.kvHeads) * d * nkPad, d * nkPad, nkPad)
        return params
    }

    // MARK: - Quantization

    /// Runs `method`'s quantization kernels (or none, for fp16 inputs of `fp16`) and returns
    /// the attention parameters that read their results.
    private func prepareInputs(
        _ method: AttentionMethod, problem: AttentionProblem, q: DeviceTensor, k: DeviceTensor, v: DeviceTensor,
        destination: QuantizedDeviceInputs? = nil
    ) throws(AttentionError) -> AttentionParams {
        for (name, tensor) in [("Q", q), ("K", k), ("V", v)] where tensor.elementType == .float32 {
            throw .unsupportedMethod(method: method.rawValue, backend: "cuda", reason: "\(name) must be fp16 or bf16 on the GPU")
        }
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
        func addr(_ slot: AttentionWorkspace.Slot, _ bytes: Int) throws(AttentionError) -> UInt64 {
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
        var statistics: [(QuantizationParams, Int)] = [(vp, hkv)]
        if method == .int8 || method == .fp8E4M3 { statistics.append((kp, hkv)) }
        if method == .fp8E4M3 { statistics.append((qp, h)) }
        for (p, heads) in statistics {
            try launch(make(.channelStats), grid: LaunchDimensions((d + 31) / 32, b * heads), block: LaunchDimensions(32, 8), params: p)
        }
        if nq > 0 {
            try launch(make(.rows(code, perTensor: perTensor, smooth: false)),
                       grid: LaunchDimensions((nq + 7) / 8, b * h), block: LaunchDimensions(256), params: qp)
        }
        try launch(make(.rows(code, perTensor: perTensor, smooth: method == .int8)),
                   grid: LaunchDimensions((nkPad + 7) / 8, b * hkv), block: LaunchDimensions(256), params: kp)
        try launch(make(.transposedV(code, perTensor: method != .int8)),
                   grid: LaunchDimensions(nkPad / 64, (d + 63) / 64, b * hkv), block: LaunchDimensions(256), params: vp)

        (params.qStrideBatch, params.qStrideHead, params.qStrideToken) = (Int64(h * nq * d), Int64(nq * d), Int64(d))
        (params.kStrideBatch, params.kStrideHead, params.kStrideToken) = (Int64(hkv * nk * d), Int64(nk * d), Int64(d))
        (params.vStrideBatch, params.vStrideHead, params.vStrideRow) = (Int64(hkv * d * nkPad), Int64(d * nkPad), Int64(nkPad))
        return params
    }

    /// `tensor` itself when it is fp16, else an fp16 copy in the workspace.
    private func halfTensor(
        _ tensor: DeviceTensor, heads: Int, tokens: Int, problem: AttentionProblem, slot: AttentionWorkspace.Slot
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

    private static func strides(_ s: TensorStrides) -> (Int64, Int64, Int64) {
        (Int64(s.batch), Int64(s.head), Int64(s.token))
    }

    static let log2e: Float = 1.442_695_04
}
