import CUDADriver

/// Family selection, the loaded-module cache and launches: which family runs a call, and how
/// its parameter block is filled.
extension CUDAAttention {

    /// The family that runs one call, and the output type its kernel writes.
    func attentionFamily(
        _ method: AttentionMethod, problem: AttentionProblem, output: DeviceTensor
    ) throws(AttentionError) -> (family: any AttentionFamily, output: KernelFloatType) {
        guard let outputType = KernelFloatType(output.elementType) else {
            throw .unsupportedMethod(method: method.rawValue, backend: "cuda", reason: "the output must be fp16 or bf16")
        }
        let family = try AttentionFamilies.select(
            method: method, headDim: problem.headDim, arch: featureArchitecture, requested: requestedFamily)
        return (family, outputType)
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
            loaded[key] = (module, function)
            return function
        }
    }

    /// Launches `variant` on `stream` with one by-value parameter block, compiling and
    /// loading it on first use: what a family's ``AttentionFamily/launch(_:on:)`` calls.
    /// Arguments after the parameter block (`more`) follow it in the kernel's signature.
    public func launch<Params: BitwiseCopyable>(
        _ variant: some KernelVariant, grid: LaunchDimensions, block: LaunchDimensions, params: Params, on stream: CUDAStream,
        programmaticDependency: Bool = false, more: [any KernelArgument] = []
    ) throws(AttentionError) {
        let function = try function(variant)
        try cuda { () throws(CUDAError) in
            try stream.launch(
                function, grid: grid, block: block, sharedMemoryBytes: variant.sharedMemoryBytes,
                arguments: [KernelStruct(params)] + more, programmaticDependency: programmaticDependency)
        }
    }

    /// Fills the call's part of the parameter block, has `family` launch its kernel, adds
    /// the smoothing shift back to the log-sum-exp when `restoring` gives Q and the K mean
    /// (`int8`), then writes the NaN rows that offending inputs reach (docs/VALIDATION.md).
    func launchAttention(
        _ family: any AttentionFamily, method: AttentionMethod, outputType: KernelFloatType,
        problem: AttentionProblem, params: inout AttentionParams,
        output: DeviceTensor, logSumExp: UInt64?, options: AttentionOptions, queryInput: ElementType?,
        restoring: (query: DeviceTensor, keyMean: UInt64)?, call: CallResources
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
        try family.launch(
            AttentionLaunch(
                method: method, problem: problem, params: params, output: outputType, options: options, stream: call.stream,
                queryInput: queryInput),
            on: self)
        if let logSumExp, let restoring {
            try restoreLogSumExp(logSumExp, query: restoring.query, keyMean: restoring.keyMean, problem: problem, on: call.stream)
        }
        let rows = PoisonKernelDescriptor.rowsPerBlock
        try launch(PoisonKernelDescriptor(causal: problem.causal, arch: architecture),
                   grid: LaunchDimensions((problem.queryLength + rows - 1) / rows, Self.gridLimited(problem.batch * problem.heads)),
                   block: LaunchDimensions(rows), params: params, on: call.stream)
    }

    /// Adds softmaxScale · (q_i · m) to each row's log-sum-exp (`Kernels/restore_lse.cu`):
    /// the shift that smoothing K by its channel mean m took from every score of row i.
    private func restoreLogSumExp(
        _ logSumExp: UInt64, query: DeviceTensor, keyMean: UInt64, problem: AttentionProblem, on stream: CUDAStream
    ) throws(AttentionError) {
        var p = RestoreLogSumExpParams()
        (p.query, p.keyMean, p.lse) = (query.address, keyMean, logSumExp)
        (p.batch, p.heads, p.kvHeads) = (Int64(problem.batch), Int64(problem.heads), Int64(problem.kvHeads))
        (p.queryLength, p.headDim) = (Int64(problem.queryLength), Int64(problem.headDim))
        (p.qStrideBatch, p.qStrideHead, p.qStrideToken) = Self.strides(query.strides)
        p.softmaxScale = problem.softmaxScale
        let rows = RestoreLogSumExpKernelDescriptor.rowsPerBlock
        try launch(RestoreLogSumExpKernelDescriptor(input: try Self.kernelInput(query.elementType), arch: architecture),
                   grid: LaunchDimensions((problem.queryLength + rows - 1) / rows, Self.gridLimited(problem.batch * problem.heads)),
                   block: LaunchDimensions(32 * rows), params: p, on: stream)
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
