import CUDADriver

/// Kernel selection, the loaded-module cache and launches: which family and variant runs a
/// call, and how its parameter block is filled.
extension CUDAAttention {

    /// The attention kernel of one call: a wgmma or an mma variant.
    enum AttentionKernel {
        case wgmma(HopperKernelDescriptor)
        case mma(AttentionKernelDescriptor)
    }

    func attentionKernel(
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
                writesLogSumExp: logSumExp != nil, arch: featureArchitecture, tiles: hopperTiles))
        case .mma:
            return .mma(try AttentionKernelDescriptor(
                method: method, headDim: problem.headDim, causal: problem.causal, output: outputType,
                writesLogSumExp: logSumExp != nil, arch: architecture,
                tiles: mmaTiles?.withDefaultQPlacement(method: method, headDim: problem.headDim)))
        }
    }

    /// The loaded function of `variant`, compiling (or reading the disk cache) on first use.
    func function(_ variant: some KernelVariant) throws(AttentionError) -> CUDAFunction {
        // Keyed by the whole descriptor: every option, spelled in the name or not.
        let key = AnyHashable(variant)
        if let entry = loaded[key] { return entry.function }
        let request = try variant.compilationRequest()
        return try cuda { () throws(CUDAError) in
            let module = try cache.kernel(for: request).load(into: context)
            let function = try module.function(named: variant.kernelName)
            if variant.sharedMemoryBytes > 48 * 1024 {
                try function.setMaxDynamicSharedMemory(bytes: variant.sharedMemoryBytes)
            }
            if variant.ctasPerMultiprocessor > 1 { try function.setPreferredSharedMemoryCarveout(percent: 100) }
            loaded[key] = (module, function)
            return function
        }
    }

    func launch<Params: BitwiseCopyable>(
        _ variant: some KernelVariant, grid: LaunchDimensions, block: LaunchDimensions, params: Params
    ) throws(AttentionError) {
        let function = try function(variant)
        try cuda { () throws(CUDAError) in
            try callStream.launch(
                function, grid: grid, block: block, sharedMemoryBytes: variant.sharedMemoryBytes,
                arguments: [KernelStruct(params)])
        }
    }

    func launchAttention(
        _ kernel: AttentionKernel, problem: AttentionProblem, params: inout AttentionParams,
        output: DeviceTensor, logSumExp: UInt64?, grid requestedGrid: HopperKernelDescriptor.GridPolicy?
    ) throws(AttentionError) {
        params.out = output.address
        params.lse = logSumExp ?? 0
        params.batch = Int64(problem.batch)
        params.heads = Int64(problem.heads)
        params.kvHeads = Int64(problem.kvHeads)
        params.queryLength = Int64(problem.queryLength)
        params.keyLength = Int64(problem.keyLength)
        params.keyLengthPadded = Int64(QuantizedDeviceInputs.paddedKeyLength(problem.keyLength))
        params.headDim = Int64(problem.headDim)
        (params.oStrideBatch, params.oStrideHead, params.oStrideToken) = Self.strides(output.strides)
        params.softmaxScaleLog2 = problem.softmaxScale * Self.log2e
        switch kernel {
        case .wgmma(let kernel):
            let grid = kernel.grid(
                for: problem, multiprocessors: context.properties.multiprocessorCount, policy: requestedGrid ?? hopperGrid)
            let hopperParams = try HopperAttentionParams(params, headDim: problem.headDim, context: context)
            try launch(kernel, grid: LaunchDimensions(grid), block: LaunchDimensions(kernel.threadsPerBlock), params: hopperParams)
        case .mma(let kernel):
            let grid = kernel.grid(for: problem)
            try launch(kernel, grid: LaunchDimensions(grid.x, grid.y, grid.z), block: LaunchDimensions(kernel.threadsPerBlock), params: params)
        }
        // The rows that offending inputs reach become NaN (docs/VALIDATION.md).
        let rows = PoisonKernelDescriptor.rowsPerBlock
        try launch(PoisonKernelDescriptor(causal: problem.causal, arch: architecture),
                   grid: LaunchDimensions((problem.queryLength + rows - 1) / rows, Self.gridLimited(problem.batch * problem.heads)),
                   block: LaunchDimensions(rows), params: params)
    }

    func quantizedParams(_ inputs: QuantizedDeviceInputs, problem: AttentionProblem) -> AttentionParams {
        let d = Int64(problem.headDim), nq = Int64(problem.queryLength), nk = Int64(problem.keyLength)
        let nkPad = Int64(QuantizedDeviceInputs.paddedKeyLength(problem.keyLength))
        var params = AttentionParams()
        params.q = inputs.q
        params.k = inputs.k
        params.v = inputs.vt
        params.qScale = inputs.qScale
        params.kScale = inputs.kScale
        params.vScale = inputs.vScale
        (params.rowMarks, params.keyMarks) = inputs.markAddresses(problem: problem)
        (params.qStrideBatch, params.qStrideHead, params.qStrideToken) = (Int64(problem.heads) * nq * d, nq * d, d)
        (params.kStrideBatch, params.kStrideHead, params.kStrideToken) = (Int64(problem.kvHeads) * nk * d, nk * d, d)
        (params.vStrideBatch, params.vStrideHead, params.vStrideRow) = (Int64(problem.kvHeads) * d * nkPad, d * nkPad, nkPad)
        return params
    }
}
