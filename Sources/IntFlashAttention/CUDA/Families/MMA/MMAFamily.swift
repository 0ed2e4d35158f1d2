import CUDADriver

/// The `mma.sync` family (`attention.cu`, `attention_mma_int8.cu`): every method on sm_80 and
/// newer.
struct MMAFamily: AttentionFamily {
    var name: AttentionKernelFamily { .mma }

    func validate(method: AttentionMethod, headDim: Int, arch: String) throws(AttentionError) {
        _ = try MMAKernelDescriptor(method: method, headDim: headDim, causal: false, arch: arch)
    }

    func headDims(for method: AttentionMethod) -> [Int] {
        MMAKernelDescriptor.methods.contains(method) ? MMAKernelDescriptor.supportedHeadDims(method) : []
    }

    func allVariants(arch: String) -> [any KernelVariant] { MMAKernelDescriptor.allVariants(arch: arch) }

    /// Compiled for the device's plain architecture; tiles from `INTFA_MMA_TILES` when set.
    func launch(_ call: AttentionLaunch, on engine: CUDAAttention) throws(AttentionError) {
        let problem = call.problem
        let kernel = try MMAKernelDescriptor(
            method: call.method, headDim: problem.headDim, causal: problem.causal, output: call.output,
            writesLogSumExp: call.writesLogSumExp, arch: engine.architecture,
            tiles: engine.mmaTiles?.withDefaultQPlacement(method: call.method, headDim: problem.headDim))
        let grid = kernel.grid(for: problem)
        try engine.launch(
            kernel, grid: LaunchDimensions(grid.x, grid.y, grid.z), block: LaunchDimensions(kernel.threadsPerBlock),
            params: call.params, on: call.stream)
    }
}
