import CUDADriver

/// Appending new tokens to a paged INT8 KV cache on the GPU (`kv_append.cu`): the GPU form
/// of ``PagedKVCache/append(sequence:keys:values:tokens:)``.
extension CUDAAttention {
    /// Quantizes `tokens` new tokens of each sequence in `sequences` (default: all) of `cache`
    /// into it: `keys` and `values` are fp16/bf16 device tensors [B, T, Hkv, D] (B = the
    /// sequences appended to, T = `tokens`; strides in `TensorStrides` terms: batch, head,
    /// token). A sequence's first append (its
    /// prefill) fixes K's channel means over its own tokens. The host takes the pages and
    /// queues their block-table entries; the kernels code the tokens and advance the device
    /// lengths, all on `stream` (default: ``stream``), with no synchronization. A token with
    /// NaN or ±Inf in its K or V is stored with NaN scales: every later attention row that
    /// sees it is NaN.
    public func append(
        to cache: DevicePagedKVCache, keys: DeviceTensor, values: DeviceTensor, tokens: Int, sequences: Range<Int>? = nil,
        stream: CUDAStream? = nil
    ) throws(AttentionError) {
        let range = sequences ?? 0..<cache.sequences
        guard range.lowerBound >= 0, range.upperBound <= cache.sequences, !range.isEmpty else {
            throw .invalidDimension(
                name: "sequences", value: range.upperBound, requirement: "must be a non-empty range within 0..<\(cache.sequences)")
        }
        try validateAppend(layout: cache.layout, sequences: range.count, keys: keys, values: values, tokens: tokens)
        guard tokens > 0 else { return }
        try serialized(stream: stream, workspace: nil) { (call) throws(AttentionError) in
            try cache.appending(tokens: tokens, sequences: range, on: call.stream) { (view) throws(AttentionError) in
                try issueAppend(view, keys: keys, values: values, tokens: tokens, on: call.stream)
            }
        }
    }

    /// The same on caller-owned cache memory: the block table must already list the pages the
    /// new tokens fall in (positions `lengths[b] ..< lengths[b] + tokens`); a token whose entry
    /// is outside the pool is not stored. Safe to capture in a CUDA graph.
    public func append(
        to cache: PagedKVCacheView, keys: DeviceTensor, values: DeviceTensor, tokens: Int, stream: CUDAStream? = nil
    ) throws(AttentionError) {
        try cache.validate()
        try validateAppend(layout: cache.layout, sequences: cache.sequences, keys: keys, values: values, tokens: tokens)
        guard tokens > 0 else { return }
        try serialized(stream: stream, workspace: nil) { (call) throws(AttentionError) in
            try issueAppend(cache, keys: keys, values: values, tokens: tokens, on: call.stream)
        }
    }

    private func validateAppend(
        layout: PagedKVCache.Layout, sequences: Int, keys: DeviceTensor, values: DeviceTensor, tokens: Int
    ) throws(AttentionError) {
        guard tokens >= 0 else { throw .invalidDimension(name: "tokens", value: tokens, requirement: "must not be negative") }
        guard keys.elementType == values.elementType, KernelFloatType(keys.elementType) != nil else {
            throw .invalidDeviceTensor(tensor: "keys/values", reason: "must both be fp16 or both bf16")
        }
        for (name, tensor) in [("keys", keys), ("values", values)] {
            try Self.validateStrides(tensor, name)
            try Self.validateAlignment(tensor.address, bytes: 2, name, what: "its address")
            try Self.validateSpan(tensor, name, batch: sequences, heads: layout.kvHeads, tokens: tokens, width: layout.headDim)
        }
    }

    private func issueAppend(
        _ cache: PagedKVCacheView, keys: DeviceTensor, values: DeviceTensor, tokens: Int, on stream: CUDAStream
    ) throws(AttentionError) {
        let layout = cache.layout
        var p = KVAppendParams()
        (p.keys, p.values) = (keys.address, values.address)
        (p.keyCodes, p.valueCodes, p.keyScales, p.valueScales) = (cache.keyCodes, cache.valueCodes, cache.keyScales, cache.valueScales)
        (p.keyMeans, p.blockTable, p.lengths) = (cache.keyMeans, cache.blockTable, cache.lengths)
        (p.batch, p.tokens, p.kvHeads, p.headDim) = (Int64(cache.sequences), Int64(tokens), Int64(layout.kvHeads), Int64(layout.headDim))
        (p.pageSize, p.pageCount, p.maxPages) = (Int64(layout.pageSize), Int64(layout.pageCount), Int64(cache.maxPages))
        (p.kStrideBatch, p.kStrideToken, p.kStrideHead) = (Int64(keys.strides.batch), Int64(keys.strides.token), Int64(keys.strides.head))
        (p.vStrideBatch, p.vStrideToken, p.vStrideHead) = (Int64(values.strides.batch), Int64(values.strides.token), Int64(values.strides.head))
        let input = KernelFloatType(keys.elementType)!
        func kernel(_ stage: KVAppendKernelDescriptor.Stage) -> KVAppendKernelDescriptor {
            KVAppendKernelDescriptor(stage: stage, input: input, arch: architecture)
        }
        let means = kernel(.means), append = kernel(.append), advance = kernel(.advance)
        try launch(means, grid: LaunchDimensions(layout.kvHeads, cache.sequences), block: LaunchDimensions(means.threadsPerBlock),
                   params: p, on: stream)
        let rows = cache.sequences * tokens * layout.kvHeads, rowsPerBlock = append.threadsPerBlock / 32
        guard (rows + rowsPerBlock - 1) / rowsPerBlock <= Int(Int32.max) else {
            throw .tooLarge(what: "an append of \(rows) token rows", limit: "at most \(Int(Int32.max) * rowsPerBlock) per call")
        }
        try launch(append, grid: LaunchDimensions((rows + rowsPerBlock - 1) / rowsPerBlock), block: LaunchDimensions(append.threadsPerBlock),
                   params: p, on: stream)
        try launch(advance, grid: LaunchDimensions((cache.sequences + advance.threadsPerBlock - 1) / advance.threadsPerBlock),
                   block: LaunchDimensions(advance.threadsPerBlock), params: p, on: stream)
    }
}
