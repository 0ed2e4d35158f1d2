import CUDADriver

/// Decode attention on a paged INT8 KV cache (`decode.cu`): the GPU form of
/// ``PagedKVCache/decode(queries:sequences:heads:queryLength:softmaxScale:causal:)``.
extension CUDAAttention {
    /// Attention of `queryLength` new tokens of every sequence of `cache` (their keys and
    /// values appended already) on its cached keys and values, by the scheme of
    /// docs/SCHEMES.md ("The INT8 KV cache"). `queries` and `output` are fp16/bf16 device tensors
    /// [B, Nq, H, D] (B = the cache's sequences; strides in `TensorStrides` terms: batch, head,
    /// token); `logSumExp`, when given, receives fp32 [B, H, Nq] natural-log values of the
    /// smoothed scores (as the oracle's). Each CTA reads one sequence's KV head for the query
    /// rows of one tile of new tokens that read it (`heads / kvHeads` heads × up to
    /// `16 / (heads / kvHeads)` tokens: a decode step of a few tokens is one tile; a chunk of a
    /// prompt appended to the cache is several, each reading the keys its tokens see), over one
    /// split of the keys; the splits (`splits`, default from
    /// ``decodeSplits(batch:kvHeads:maxLength:multiprocessors:residentPerMultiprocessor:)``)
    /// merge by their log-sum-exps in a second kernel (one split writes the output itself).
    /// Issued on `stream` (default: ``stream``) with the partials in `workspace` when given
    /// (``decodeWorkspaceByteCount(cache:heads:queryLength:splits:)``), else in this instance's
    /// own. A token stored with NaN scales (its K or V held NaN or ±Inf) makes every row that
    /// sees it NaN; NaN or ±Inf in `queries` are not screened here, and the rows holding them
    /// come back unspecified.
    public func decode(
        cache: DevicePagedKVCache, queries: DeviceTensor, heads: Int, queryLength: Int, output: DeviceTensor,
        logSumExp: UInt64? = nil, softmaxScale: Float? = nil, causal: Bool = true, splits: Int? = nil,
        stream: CUDAStream? = nil, workspace: DeviceWorkspace? = nil
    ) throws(AttentionError) {
        let lengths = cache.lengths
        if causal, let short = lengths.firstIndex(where: { $0 < queryLength }) {
            throw .invalidDimension(
                name: "queryLength", value: queryLength,
                requirement: "sequence \(short) holds \(lengths[short]) tokens; the new tokens' keys must be appended before a causal decode")
        }
        try decode(
            cache: try cache.view(), queries: queries, heads: heads, queryLength: queryLength, output: output, logSumExp: logSumExp,
            softmaxScale: softmaxScale, causal: causal, splits: splits, stream: stream, workspace: workspace)
    }

    /// The same on caller-owned cache memory. The lengths live on the device, so the causal
    /// precondition is not checked here: a sequence shorter than `queryLength` gives its
    /// first rows fewer keys (none: 0 and −∞). Splits are planned by `cache.maxLength`.
    /// Safe to capture in a CUDA graph.
    public func decode(
        cache: PagedKVCacheView, queries: DeviceTensor, heads: Int, queryLength: Int, output: DeviceTensor,
        logSumExp: UInt64? = nil, softmaxScale: Float? = nil, causal: Bool = true, splits: Int? = nil,
        stream: CUDAStream? = nil, workspace: DeviceWorkspace? = nil
    ) throws(AttentionError) {
        try cache.validate()
        let layout = cache.layout, d = layout.headDim, hkv = layout.kvHeads, b = cache.sequences
        guard DecodeKernelDescriptor.headDims.contains(d) else {
            throw .unsupportedHeadDim(d, supported: DecodeKernelDescriptor.headDims)
        }
        guard heads >= 1, heads % hkv == 0 else { throw .headsNotDivisible(heads: heads, kvHeads: hkv) }
        guard queryLength >= 1 else { throw .invalidDimension(name: "queryLength", value: queryLength, requirement: "must be at least 1") }
        let group = heads / hkv, maxRows = DecodeKernelDescriptor.maxRows
        guard let (tokensPerTile, tiles, rows) = DecodeKernelDescriptor.queryTile(group: group, queryLength: queryLength) else {
            throw .unsupportedMethod(
                method: "decode", backend: "cuda", reason: "\(group) query heads per KV head (heads / kvHeads); at most \(maxRows)")
        }
        let capacity = DecodeKernelDescriptor.rowCapacity(for: rows) ?? maxRows  // rows ≤ maxRows
        guard hkv <= 65_535 else {
            throw .invalidDimension(name: "kvHeads", value: hkv, requirement: "at most 65535 KV heads per decode call")
        }
        guard let queryType = KernelFloatType(queries.elementType), let outputType = KernelFloatType(output.elementType) else {
            throw .invalidDeviceTensor(tensor: "queries/output", reason: "must be fp16 or bf16")
        }
        for (name, tensor) in [("queries", queries), ("output", output)] {
            try Self.validateStrides(tensor, name)
            try Self.validateAlignment(tensor.address, bytes: 2, name, what: "its address")
            try Self.validateSpan(tensor, name, batch: b, heads: heads, tokens: queryLength, width: d)
        }
        if let logSumExp { try Self.validateAlignment(logSumExp, bytes: 4, "logSumExp", what: "its address") }
        let scale = softmaxScale ?? 1 / Float(d).squareRoot()
        guard scale.isFinite, scale > 0 else { throw .invalidSoftmaxScale(scale) }

        if let splits, splits < 1 { throw .invalidDimension(name: "splits", value: splits, requirement: "must be at least 1") }
        func kernel(_ stage: DecodeKernelDescriptor.Stage) -> DecodeKernelDescriptor {
            DecodeKernelDescriptor(stage: stage, headDim: d, rows: capacity, query: queryType, output: outputType, arch: architecture)
        }
        var p = DecodeParams()
        p.query = queries.address
        p.out = output.address
        p.lse = logSumExp ?? 0
        (p.batch, p.heads, p.kvHeads, p.queryLength, p.headDim) = (Int64(b), Int64(heads), Int64(hkv), Int64(queryLength), Int64(d))
        (p.pageSize, p.maxPages, p.pageCount) = (Int64(layout.pageSize), Int64(cache.maxPages), Int64(layout.pageCount))
        (p.qStrideBatch, p.qStrideToken, p.qStrideHead) = (Int64(queries.strides.batch), Int64(queries.strides.token), Int64(queries.strides.head))
        (p.oStrideBatch, p.oStrideToken, p.oStrideHead) = (Int64(output.strides.batch), Int64(output.strides.token), Int64(output.strides.head))
        p.causal = causal ? 1 : 0
        p.softmaxScaleLog2 = scale * Self.log2e
        p.tokensPerTile = Int64(tokensPerTile)
        try serialized(stream: stream, workspace: workspace) { (call) throws(AttentionError) in
            // The planner counts the CTAs that fit on an SM, by the compiled kernel's registers too
            // (read once per kernel).
            let attend = kernel(.attend)
            let resident: Int
            if let known = decodeResidency[attend] {
                resident = known
            } else {
                let function = try function(attend)
                let registers = try cuda { () throws(CUDAError) in try function.registerCount }
                resident = residentDecodeBlocks(headDim: d, registers: registers)
                decodeResidency[attend] = resident
            }
            let plan = decodePlan(cache: cache, splits: splits, resident: resident, tiles: tiles)
            (p.splits, p.splitKeys) = (Int64(plan.splits), Int64(plan.splitKeys))
            let partials = Self.decodePartials(cache: cache, heads: heads, queryLength: queryLength, splits: plan.splits)
            let slots = try workspaceAddresses(plan.splits > 1 ? [(.decodePartials, partials.bytes)] : [], lent: call.workspace)
            p.partialOut = slots[.decodePartials] ?? 0
            p.partialLse = p.partialOut + UInt64(partials.outputBytes)
            (p.keyCodes, p.valueCodes, p.keyScales, p.valueScales) = (cache.keyCodes, cache.valueCodes, cache.keyScales, cache.valueScales)
            (p.blockTable, p.lengths) = (cache.blockTable, cache.lengths)
            let combine = kernel(.combine)
            guard plan.splits * tiles <= Int(Int32.max) else {
                throw .invalidDimension(name: "queryLength", value: queryLength, requirement: "too many query tiles × splits for one grid")
            }
            try launch(attend, grid: LaunchDimensions(plan.splits * tiles, hkv, b), block: LaunchDimensions(attend.threadsPerBlock),
                       params: p, on: call.stream)
            // One split writes the output itself. On sm_90 and later the combine is the attention
            // kernel's programmatic dependent: its launch overlaps that kernel's run.
            guard plan.splits > 1 else { return }
            let outputRows = b * heads * queryLength, perBlock = DecodeKernelDescriptor.combineRowsPerBlock
            try launch(combine, grid: LaunchDimensions((outputRows + perBlock - 1) / perBlock),
                       block: LaunchDimensions(combine.threadsPerBlock), params: p, on: call.stream,
                       programmaticDependency: (MMAKernelDescriptor.smVersion(architecture) ?? 0) >= 90)
        }
    }

    /// Device memory ``decode(cache:queries:heads:queryLength:output:logSumExp:softmaxScale:causal:splits:stream:workspace:)``
    /// needs as its workspace: the partials of `splits` splits (default: the most the planner
    /// gives for `cache.maxLength` or less, so that one workspace serves every later step of a
    /// cache that grows to that bound).
    public func decodeWorkspaceByteCount(cache: PagedKVCacheView, heads: Int, queryLength: Int, splits: Int? = nil) -> Int {
        let bound = splits.map { Self.decodeSplits(forced: max($0, 1), maxLength: cache.maxLength).splits }
            ?? min(decodeSplitTarget(cache: cache, resident: residentDecodeBlocks(headDim: cache.layout.headDim, registers: nil)),
                   Self.decodeBlocks(cache.maxLength))
        guard bound > 1 else { return 0 }  // one split writes the output directly
        let partials = Self.decodePartials(cache: cache, heads: heads, queryLength: queryLength, splits: bound)
        return DeviceWorkspace.byteCount(for: [(.decodePartials, partials.bytes)])
    }

    /// The splits of a decode call on `cache` with `tiles` query tiles: `splits` when given,
    /// else the planner's for this device with `resident` attention CTAs per SM.
    func decodePlan(cache: PagedKVCacheView, splits: Int?, resident: Int, tiles: Int) -> (splits: Int, splitKeys: Int) {
        Self.decodeSplits(forced: splits ?? decodeSplitTarget(cache: cache, resident: resident, tiles: tiles), maxLength: cache.maxLength)
    }

    /// The planner's splits for `cache` before they are fitted to its length (an upper bound
    /// of them, as are its blocks: ``decodeSplits(forced:maxLength:)`` never exceeds either).
    /// More query tiles fill the device with fewer splits; one tile gives the most.
    func decodeSplitTarget(cache: PagedKVCacheView, resident: Int, tiles: Int = 1) -> Int {
        Self.decodeSplitTarget(
            slices: cache.sequences * cache.layout.kvHeads * tiles, multiprocessors: context.properties.multiprocessorCount,
            resident: resident)
    }

    /// Attention CTAs of head dim `headDim` that fit on one SM by their shared memory and,
    /// when given, their registers per thread.
    func residentDecodeBlocks(headDim: Int, registers: Int?) -> Int {
        let kernel = DecodeKernelDescriptor(
            stage: .attend, headDim: headDim, rows: DecodeKernelDescriptor.rowCapacities[0], query: .float16, output: .float16,
            arch: architecture)
        let properties = context.properties
        var resident = properties.maxSharedMemoryPerMultiprocessor / (kernel.sharedMemoryBytes + 1024)
        if let registers {
            // 64K registers per SM, allocated per warp in units of 256.
            let perWarp = (registers * 32 + 255) / 256 * 256
            resident = min(resident, 65_536 / (perWarp * kernel.threadsPerBlock / 32))
        }
        return max(resident, 1)
    }

    /// Bytes of the splits' fp32 partials: the outputs [splits, B, H, Nq, D], then the
    /// log-sum-exps [splits, B, H, Nq].
    static func decodePartials(cache: PagedKVCacheView, heads: Int, queryLength: Int, splits: Int) -> (outputBytes: Int, bytes: Int) {
        let rows = splits * cache.sequences * heads * queryLength
        return (rows * cache.layout.headDim * 4, rows * (cache.layout.headDim + 1) * 4)
    }

    /// The splits of a decode call's keys. Each CTA streams its split alone, so the grid
    /// should fill the device once without a partial second wave: with fewer (batch, KV
    /// head) slices than resident CTAs, as many splits as fit whole (⌊SMs · resident /
    /// slices⌋), else none. Splits are whole key blocks (``PagedKVCache/decodeBlockKeys``), so that the P blocks are the
    /// scheme's whatever the split.
    public static func decodeSplits(
        batch: Int, kvHeads: Int, maxLength: Int, multiprocessors: Int, residentPerMultiprocessor: Int = 1
    ) -> (splits: Int, splitKeys: Int) {
        decodeSplits(
            forced: decodeSplitTarget(slices: batch * kvHeads, multiprocessors: multiprocessors, resident: residentPerMultiprocessor),
            maxLength: maxLength)
    }

    /// ⌊SMs · resident / slices⌋ splits, at least one.
    static func decodeSplitTarget(slices: Int, multiprocessors: Int, resident: Int) -> Int {
        max(1, multiprocessors * max(resident, 1) / max(slices, 1))
    }

    /// Key blocks covering `maxLength` keys, at least one.
    static func decodeBlocks(_ maxLength: Int) -> Int {
        max(1, (maxLength + DecodeKernelDescriptor.blockKeys - 1) / DecodeKernelDescriptor.blockKeys)
    }

    /// At most `splits` splits of whole key blocks covering `maxLength` keys (so never more
    /// than the blocks).
    static func decodeSplits(forced splits: Int, maxLength: Int) -> (splits: Int, splitKeys: Int) {
        let block = DecodeKernelDescriptor.blockKeys
        let blocks = decodeBlocks(maxLength)
        let perSplit = (blocks + min(splits, blocks) - 1) / min(splits, blocks)
        let splitKeys = perSplit * block
        return (max(1, (maxLength + splitKeys - 1) / splitKeys), splitKeys)
    }
}
