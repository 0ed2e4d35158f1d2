import CUDADriver

/// Merging partial attention results by their log-sum-exps: the combination step of
/// context-parallel (ring) and split-key attention, one pass over the rows.
extension CUDAAttention {
    /// Merges `part` (fp16/bf16 [B, H, N, D], the attention of the rows over one key set)
    /// into the fp32 accumulator `output` (the attention over the key sets merged so far), in
    /// place: with l = log(e^lse + e^partLse), output = output · e^(lse − l) + part · e^(partLse − l)
    /// and lse = l. The log-sum-exps are fp32 [B, H, N] tensors with token stride 1 (their
    /// `strides.token` must be 1); a row with −∞ in one takes the other's result. Issued on
    /// `stream` (default: ``stream``); it needs no workspace.
    public func mergePartial(
        into output: DeviceTensor, logSumExp: DeviceTensor, part: DeviceTensor, partLogSumExp: DeviceTensor,
        batch: Int, heads: Int, tokens: Int, headDim: Int, stream: CUDAStream? = nil
    ) throws(AttentionError) {
        let input = try Self.validateMerge(
            output: output, logSumExp: logSumExp, part: part, partLogSumExp: partLogSumExp,
            batch: batch, heads: heads, tokens: tokens, headDim: headDim)
        let rows = batch * heads * tokens
        guard rows > 0 else { return }
        let (threadsPerRow, rowsPerBlock) = MergeKernelDescriptor.geometry(headDim: headDim)
        let blocks = (rows + rowsPerBlock - 1) / rowsPerBlock
        guard blocks <= Int(Int32.max) else {
            throw .invalidDimension(name: "rows", value: rows, requirement: "too many rows (B·H·N) for one launch")
        }
        var params = MergeParams()
        (params.out, params.lse, params.part, params.partLse) = (output.address, logSumExp.address, part.address, partLogSumExp.address)
        (params.batch, params.heads, params.tokens, params.headDim) = (Int64(batch), Int64(heads), Int64(tokens), Int64(headDim))
        (params.oStrideBatch, params.oStrideHead, params.oStrideToken) = Self.strides(output.strides)
        (params.pStrideBatch, params.pStrideHead, params.pStrideToken) = Self.strides(part.strides)
        (params.lseStrideBatch, params.lseStrideHead) = (Int64(logSumExp.strides.batch), Int64(logSumExp.strides.head))
        (params.partLseStrideBatch, params.partLseStrideHead) = (Int64(partLogSumExp.strides.batch), Int64(partLogSumExp.strides.head))
        (params.threadsPerRow, params.rowsPerBlock) = (Int64(threadsPerRow), Int64(rowsPerBlock))
        let kernel = MergeKernelDescriptor(input: input, arch: architecture)
        try serialized(stream: stream, workspace: nil) { (call) throws(AttentionError) in
            try launch(
                kernel, grid: LaunchDimensions(blocks), block: LaunchDimensions(threadsPerRow * rowsPerBlock), params: params,
                on: call.stream)
        }
    }

    /// What ``mergePartial(into:logSumExp:part:partLogSumExp:batch:heads:tokens:headDim:stream:)``
    /// refuses before queuing: the kernel reads 4 channels at a time (16-byte fp32, 8-byte
    /// fp16/bf16) and each log-sum-exp as contiguous rows. Returns the part's element type.
    @discardableResult
    static func validateMerge(
        output: DeviceTensor, logSumExp: DeviceTensor, part: DeviceTensor, partLogSumExp: DeviceTensor,
        batch: Int, heads: Int, tokens: Int, headDim: Int
    ) throws(AttentionError) -> KernelFloatType {
        for (name, value) in [("batch", batch), ("heads", heads), ("tokens", tokens)] where value < 0 {
            throw .invalidDimension(name: name, value: value, requirement: "must not be negative")
        }
        guard headDim > 0, headDim % 4 == 0, headDim <= 4 * MergeKernelDescriptor.maxThreadsPerBlock else {
            throw .invalidDimension(
                name: "headDim", value: headDim,
                requirement: "must be a multiple of 4 up to \(4 * MergeKernelDescriptor.maxThreadsPerBlock) to merge")
        }
        guard output.elementType == .float32 else {
            throw .invalidDeviceTensor(tensor: "merge output", reason: "the accumulator must be fp32, not \(output.elementType)")
        }
        let input = try kernelInput(part.elementType)
        for (name, lse) in [("logSumExp", logSumExp), ("partLogSumExp", partLogSumExp)] {
            guard lse.elementType == .float32, lse.strides.token == 1 else {
                throw .invalidDeviceTensor(tensor: name, reason: "must be fp32 with token stride 1")
            }
            try validateStrides(lse, name)
            try validateAlignment(lse.address, bytes: 4, name, what: "its address")
        }
        try validateStrides(output, "merge output")
        try validateAlignment(output.address, bytes: 16, "merge output", what: "the kernel reads 4 channels at a time, so its address")
        try validateStrideMultiple(output, of: 4, "merge output", because: "the kernel reads 4 channels at a time")
        try validateStrides(part, "part")
        try validateAlignment(part.address, bytes: 8, "part", what: "the kernel reads 4 channels at a time, so its address")
        try validateStrideMultiple(part, of: 4, "part", because: "the kernel reads 4 channels at a time")
        for (name, tensor, width) in [("merge output", output, headDim), ("part", part, headDim),
                                      ("logSumExp", logSumExp, 1), ("partLogSumExp", partLogSumExp, 1)] {
            try validateSpan(tensor, name, batch: batch, heads: heads, tokens: tokens, width: width)
        }
        return input
    }
}
