import CUDADriver
import Foundation

/// FlashAttention forward on one CUDA device, with the kernels of `Kernels/` and `Families/` compiled
/// for the device's exact architecture on first use.
///
/// Three ways in: ``forward(_:problem:q:k:v:output:logSumExp:stream:workspace:options:)`` on device tensors the
/// caller owns (fp16/bf16 in, quantization inside), ``forward(quantized:problem:output:logSumExp:stream:options:)``
/// on already-quantized INT8 tensors, and ``run(_:problem:q:k:v:outputType:computeLogSumExp:validateInputs:)``
/// on host tensors. Calls on one instance are serialized; they are ordered on ``stream``.
public final class CUDAAttention: @unchecked Sendable {
    /// The device's primary context (shared with the CUDA runtime and PyTorch).
    public let context: CUDAContext
    /// The architecture kernels are compiled for, e.g. `sm_90`.
    public let architecture: String
    /// The stream every call is issued on.
    public let stream: CUDAStream
    let cache: KernelCache
    // `lock` guards everything below and serializes calls (they share the workspace).
    private let lock = NSLock()
    var loaded: [AnyHashable: (module: CUDAModule, function: CUDAFunction)] = [:]
    /// Decode attention CTAs resident per SM, per kernel (from its compiled registers).
    var decodeResidency: [DecodeKernelDescriptor: Int] = [:]
    let workspace: AttentionWorkspace<ContextWorkspaceMemory>
    var requestedFamily: AttentionKernelFamily?
    // Tuning overrides, read from the environment once (`INTFA_WGMMA_TILES`, `INTFA_WGMMA_GRID`,
    // `INTFA_MMA_TILES`): a call's host time is part of its latency.
    let hopperTiles: HopperKernelDescriptor.Tiles?
    let mmaTiles: MMAKernelDescriptor.Tiles?
    let hopperGrid: HopperKernelDescriptor.GridPolicy?
    // Whether the wgmma kernels quantize Q themselves: forced by `INTFA_WGMMA_FUSED_Q=1|0`,
    // nil for the heuristic.
    let hopperFusedQuery: Bool?

    /// Opens device `device`; `cache` defaults to NVRTC with the on-disk cache. `kernelFamily`
    /// forces one family of ``AttentionFamilies`` (default: `INTFA_KERNEL`, else chosen per
    /// problem).
    public init(device: Int = 0, cache: KernelCache? = nil, kernelFamily: AttentionKernelFamily? = nil) throws(AttentionError) {
        let environment = ProcessInfo.processInfo.environment
        if let kernelFamily {
            requestedFamily = kernelFamily
        } else {
            requestedFamily = try AttentionKernelFamily.fromEnvironment(environment)
        }
        hopperTiles = try HopperKernelDescriptor.tiles(fromEnvironment: environment)
        hopperGrid = try HopperKernelDescriptor.GridPolicy.fromEnvironment(environment)
        hopperFusedQuery = try HopperKernelDescriptor.fusedQueryQuantization(fromEnvironment: environment)
        mmaTiles = try MMAKernelDescriptor.tiles(fromEnvironment: environment)
        do throws(CUDAError) {
            context = try CUDAContext(device: device)
            architecture = context.properties.computeCapability.architecture
            stream = try CUDAStream(context: context)
            if let cache { self.cache = cache } else { self.cache = try KernelCache() }
        } catch {
            throw AttentionError(error)
        }
        workspace = AttentionWorkspace(memory: ContextWorkspaceMemory(context: context))
    }

    /// The family every call uses, or nil to choose per problem (the first of
    /// ``AttentionFamilies`` that can run it: wgmma for `int8` at D = 64 and 128 on compute
    /// capability 9.0, mma otherwise). Setting a family that cannot run a later call's
    /// problem makes that call throw.
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
        MMAKernelDescriptor.methods.filter {
            (try? MMAKernelDescriptor(method: $0, headDim: 64, causal: false, arch: architecture)) != nil
        }
    }

    // MARK: - Device tensors

    /// Attention on fp16/bf16 device tensors, quantizing inside with `method`'s scheme.
    /// `output` must be fp16 or bf16; `logSumExp`, when given, receives fp32 [B, H, Nq]
    /// natural-log values of the exact scores for every method (for `int8`, whose smoothing
    /// shifts its kernel's, a last kernel adds softmaxScale · q · mean(K) back). The caller owes
    /// that every element the problem's extents reach at each tensor's strides lies in memory
    /// it owns (this call checks that the span fits in 64 bits, not that it is allocated), and
    /// that `output` overlaps no input. NaN and ±Inf inputs follow the CPU path's contract
    /// (``InputScreen``) without a host scan: the quantizers (a screen kernel for `fp16`) take
    /// them as 0 and mark their rows, and a last kernel writes NaN into the output rows and
    /// log-sum-exps they reach. An empty problem (B = 0 or Nq = 0) queues nothing. Returns
    /// once the work is issued on `stream` (default: ``stream``). With a `workspace` (sized by
    /// ``workspaceByteCount(_:problem:inputType:)``) the call allocates no device memory and
    /// never waits for the device, so it can be captured in a CUDA graph; without one it uses
    /// this instance's own workspace, which may grow.
    public func forward(
        _ method: AttentionMethod, problem: AttentionProblem,
        q: DeviceTensor, k: DeviceTensor, v: DeviceTensor, output: DeviceTensor, logSumExp: UInt64? = nil,
        stream: CUDAStream? = nil, workspace: DeviceWorkspace? = nil, options: AttentionOptions = .init()
    ) throws(AttentionError) {
        try problem.validate()
        try Self.validateLimits(problem)
        try Self.validateInputs(method, q: q, k: k, v: v)
        try Self.validateOutput(output, logSumExp: logSumExp)
        try Self.validateSpans(problem, q: q, k: k, v: v, output: output)
        guard !problem.isEmpty else { return }
        try serialized(stream: stream, workspace: workspace) { (call) throws(AttentionError) in
            let (family, outputType) = try attentionFamily(method, problem: problem, output: output)
            let fusedQuery = family.quantizesQueries(method, problem: problem, from: q, engine: self)
            let plan = QuantizationPlan(method, problem: problem, inputType: q.elementType)
            var prepared = try prepareInputs(plan, q: q, k: k, v: v, rawQuery: fusedQuery, call: call)
            try launchAttention(
                family, method: method, outputType: outputType, problem: problem, params: &prepared.params, output: output,
                logSumExp: logSumExp, options: options, queryInput: fusedQuery ? q.elementType : nil,
                restoring: prepared.keyMean.map { (q, $0) }, call: call)
        }
    }

    /// Attention on INT8 inputs already in the layout of docs/SCHEMES.md, issued on `stream`
    /// (default: ``stream``); it needs no workspace. For `int8` the log-sum-exp is that of the
    /// smoothed scores, the exact one minus softmaxScale · q · m with m the K mean the inputs
    /// were quantized with: the codes no longer hold q, and pieces of one sequence quantized
    /// with one m (``quantize(_:problem:q:k:v:into:statistics:stream:workspace:)`` with
    /// `statistics`) merge exactly all the same.
    public func forward(
        quantized inputs: QuantizedDeviceInputs, problem: AttentionProblem,
        output: DeviceTensor, logSumExp: UInt64? = nil, stream: CUDAStream? = nil, options: AttentionOptions = .init()
    ) throws(AttentionError) {
        try problem.validate()
        guard inputs.method != .fp16 else {
            throw .unsupportedMethod(method: inputs.method.rawValue, backend: "cuda", reason: "fp16 has no quantized form")
        }
        try Self.validateLimits(problem)
        try Self.validateQuantized(inputs)
        try Self.validateOutput(output, logSumExp: logSumExp)
        try Self.validateSpans(problem, output: output)
        guard !problem.isEmpty else { return }
        try serialized(stream: stream, workspace: nil) { (call) throws(AttentionError) in
            let (family, outputType) = try attentionFamily(inputs.method, problem: problem, output: output)
            var params = quantizedParams(inputs, problem: problem)
            try launchAttention(
                family, method: inputs.method, outputType: outputType, problem: problem, params: &params, output: output,
                logSumExp: logSumExp, options: options, queryInput: nil, restoring: nil, call: call)
        }
    }

    /// Quantizes fp16/bf16 device tensors with `method`'s scheme (INT8 or FP8) and returns
    /// them in the pre-quantized form: into `destination`'s buffers when given (sized by
    /// ``QuantizedDeviceInputs/byteCounts(method:problem:)``), else into the workspace (the
    /// lent one, or this instance's own, valid until its next call). Issued on `stream`
    /// (default: ``stream``). With `statistics` (`int8` and `int8-paper` only), K's channel
    /// mean and V's channel amax come from the caller instead of from k and v.
    public func quantize(
        _ method: AttentionMethod, problem: AttentionProblem, q: DeviceTensor, k: DeviceTensor, v: DeviceTensor,
        into destination: QuantizedDeviceInputs? = nil, statistics: ChannelStatistics? = nil,
        stream: CUDAStream? = nil, workspace: DeviceWorkspace? = nil
    ) throws(AttentionError) -> QuantizedDeviceInputs {
        try problem.validate()
        guard method != .fp16 else {
            throw .unsupportedMethod(method: method.rawValue, backend: "cuda", reason: "fp16 has no quantized form")
        }
        try Self.validateLimits(problem)
        try Self.validateInputs(method, q: q, k: k, v: v)
        try Self.validateSpans(problem, q: q, k: k, v: v)
        if let destination { try Self.validateQuantized(destination) }
        if let statistics {
            guard method == .int8 || method == .int8Paper else {
                throw .unsupportedMethod(method: method.rawValue, backend: "cuda", reason: "only the int8 schemes take channel statistics")
            }
            try Self.validateStatistics(statistics)
        }
        return try serialized(stream: stream, workspace: workspace) { (call) throws(AttentionError) in
            let plan = QuantizationPlan(
                method, problem: problem, inputType: q.elementType, quantizedIntoCaller: destination != nil,
                suppliedStatistics: statistics != nil)
            let prepared = try prepareInputs(plan, q: q, k: k, v: v, destination: destination, statistics: statistics, call: call)
            return QuantizedDeviceInputs(prepared.params, method: method)
        }
    }

    /// Runs `body` holding the instance's lock (calls share its module table and own
    /// workspace), with the call's stream (default: ``stream``) and lent workspace.
    func serialized<T>(
        stream: CUDAStream?, workspace: DeviceWorkspace?, _ body: (CallResources) throws(AttentionError) -> T
    ) throws(AttentionError) -> T {
        if let stream, stream.context !== context {
            throw .gpu("the stream belongs to device \(stream.context.ordinal), this instance to device \(context.ordinal)")
        }
        lock.lock()
        defer { lock.unlock() }
        return try body(CallResources(stream: stream ?? self.stream, workspace: workspace))
    }
}

/// What one call runs with: the stream its work is queued on and, when the caller lends one,
/// the workspace it uses instead of the instance's own.
public struct CallResources: @unchecked Sendable {
    /// The stream every kernel of the call is launched on.
    public let stream: CUDAStream
    /// The caller's workspace, or nil for the instance's.
    let workspace: DeviceWorkspace?
}
