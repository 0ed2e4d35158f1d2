import CUDADriver

/// The Hopper family (`attention_wgmma.cu`): warpgroup MMAs fed by TMA, the `int8` scheme at
/// D = 64 and 128 on compute capability 9.0 (sm_90a).
struct HopperFamily: AttentionFamily {
    var name: AttentionKernelFamily { .wgmma }

    func validate(method: AttentionMethod, headDim: Int, arch: String) throws(AttentionError) {
        guard method == .int8, HopperKernelDescriptor.supports(arch: arch), HopperKernelDescriptor.headDims.contains(headDim) else {
            throw .unsupportedMethod(
                method: method.rawValue, backend: "cuda",
                reason: "the wgmma kernels run int8 at D = 64 or 128 on compute capability 9.0 only (\(arch), D = \(headDim))")
        }
    }

    func headDims(for method: AttentionMethod) -> [Int] { method == .int8 ? HopperKernelDescriptor.headDims : [] }

    func allVariants(arch: String) -> [any KernelVariant] { HopperKernelDescriptor.allVariants(arch: arch) }

    /// The kernel quantizes Q itself (one read of fp16 or bf16 Q per tile instead of a
    /// quantizer pass) where its 16-byte row loads can read Q (16-byte aligned rows, contiguous
    /// head dim) and ``HopperKernelDescriptor/fusesQueryQuantization(problem:)`` expects a
    /// gain; `INTFA_WGMMA_FUSED_Q=1` or `0` forces it on or off.
    func quantizesQueries(
        _ method: AttentionMethod, problem: AttentionProblem, from query: DeviceTensor, engine: CUDAAttention
    ) -> Bool {
        guard method == .int8, query.elementType != .float32, engine.hopperFusedQuery != false else { return false }
        let strides = [query.strides.batch, query.strides.head, query.strides.token]
        guard query.address % 16 == 0, strides.allSatisfy({ $0 % 8 == 0 }) else { return false }
        return engine.hopperFusedQuery ?? HopperKernelDescriptor.fusesQueryQuantization(problem: problem)
    }

    /// The tiles and grid come from the call's hint, else the engine's tuning overrides
    /// (`INTFA_WGMMA_TILES`, `INTFA_WGMMA_GRID`), else the descriptor's defaults.
    func launch(_ call: AttentionLaunch, on engine: CUDAAttention) throws(AttentionError) {
        let problem = call.problem
        let kernel = try HopperKernelDescriptor(
            headDim: problem.headDim, causal: problem.causal, output: call.output,
            writesLogSumExp: call.writesLogSumExp, arch: engine.featureArchitecture, tiles: engine.hopperTiles,
            queryInput: try call.queryInput.map { (type) throws(AttentionError) in try CUDAAttention.kernelInput(type) })
        let grid = kernel.grid(
            for: problem, multiprocessors: engine.context.properties.multiprocessorCount, policy: call.options.grid ?? engine.hopperGrid)
        let params = try HopperAttentionParams(call.params, headDim: problem.headDim, context: engine.context)
        try engine.launch(
            kernel, grid: LaunchDimensions(grid), block: LaunchDimensions(kernel.threadsPerBlock), params: params, on: call.stream)
    }
}
