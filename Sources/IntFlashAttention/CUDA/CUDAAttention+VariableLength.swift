import CUDADriver

/// Packed variable-length attention on the device (``VariableLengthBatch``): the GPU form of
/// ``CPUAttention/runVariableLength(_:batch:q:k:v:causal:softmaxScale:threads:)``.
extension CUDAAttention {
    /// `method` on a packed variable-length batch: `q` and `output` [totalQueryTokens, heads,
    /// headDim], `k` and `v` [totalKeyTokens, kvHeads, headDim] (fp16/bf16; their `head` and
    /// `token` strides are used, `batch` is ignored). Sequence b's queries attend to its own
    /// keys only, as a dense call on that sequence would (bottom-right causal per sequence).
    ///
    /// A pack of equal lengths runs as one dense call over a [B, N, H, D] view of the packed
    /// tensors, at the dense kernel's speed. A causal pack of many short prompts (each with as
    /// many queries as keys; ``paddedGroupLength(_:method:causal:)``) is copied, in groups of
    /// up to ``VariableLengthKernelDescriptor/maxSequences`` sequences, into padded dense
    /// batches, its `int8` channel statistics measured per sequence so that each quantizes as
    /// it would alone, and their output copied back. Other mixed lengths run one dense call
    /// per sequence on `stream`, each a view into the packed tensors (no copies). All share
    /// `workspace` (size: ``variableLengthWorkspaceByteCount(_:batch:inputType:)``); with it
    /// the call allocates nothing and never waits, so it can be captured in a CUDA graph.
    /// A sequence with queries but no keys is refused: its attention is undefined.
    public func forwardVariableLength(
        _ method: AttentionMethod, batch: VariableLengthBatch, q: DeviceTensor, k: DeviceTensor, v: DeviceTensor,
        output: DeviceTensor, causal: Bool = false, softmaxScale: Float? = nil, stream: CUDAStream? = nil,
        workspace: DeviceWorkspace? = nil, options: AttentionOptions = .init()
    ) throws(AttentionError) {
        let aligned = [q, k, v, output].allSatisfy(Self.copiesInWholeVectors)
        for call in try Self.variableLengthCalls(batch, method: method, causal: causal, softmaxScale: softmaxScale, aligned: aligned) {
            switch call {
            case .dense(let p, let q0, let k0):
                func view(_ tensor: DeviceTensor, first: Int, batchStride: Int) -> DeviceTensor {
                    let offset = first * tensor.strides.token * tensor.elementType.size
                    return DeviceTensor(
                        address: tensor.address &+ UInt64(offset), elementType: tensor.elementType,
                        strides: TensorStrides(batch: batchStride, head: tensor.strides.head, token: tensor.strides.token))
                }
                try forward(
                    method, problem: p, q: view(q, first: q0, batchStride: p.queryLength * q.strides.token),
                    k: view(k, first: k0, batchStride: p.keyLength * k.strides.token),
                    v: view(v, first: k0, batchStride: p.keyLength * v.strides.token),
                    output: view(output, first: q0, batchStride: p.queryLength * output.strides.token),
                    stream: stream, workspace: workspace, options: options)
            case .padded(let p, let sequences):
                try forwardPadded(
                    method, problem: p, starts: Array(batch.cuSeqlensQ[sequences.lowerBound...sequences.upperBound]), q: q, k: k, v: v,
                    output: output, stream: stream, workspace: workspace, options: options)
            }
        }
    }

    /// Whether the padding kernels may copy `tensor` 16 bytes at a time: its address and its
    /// head and token strides (16-bit elements) are multiples of 16 bytes.
    private static func copiesInWholeVectors(_ tensor: DeviceTensor) -> Bool {
        let address: UInt64 = tensor.address % 16, head: Int = tensor.strides.head % 8, token: Int = tensor.strides.token % 8
        return address == 0 && head == 0 && token == 0
    }

    /// Device memory ``forwardVariableLength(_:batch:q:k:v:output:causal:softmaxScale:stream:workspace:options:)``
    /// needs as its workspace: the largest of its dense calls', or the padded batch's.
    public static func variableLengthWorkspaceByteCount(
        _ method: AttentionMethod, batch: VariableLengthBatch, inputType: ElementType
    ) throws(AttentionError) -> Int {
        // The calls of a causal pack, the larger plan; a padded batch also holds the calls'.
        let calls = try variableLengthCalls(batch, method: method, causal: true, softmaxScale: nil, aligned: true)
            + variableLengthCalls(batch, method: method, causal: false, softmaxScale: nil, aligned: true)
        return calls.map { call in
            switch call {
            case .dense(let problem, _, _): workspaceByteCount(method, problem: problem, inputType: inputType)
            case .padded(let problem, _):
                DeviceWorkspace.byteCount(for: [(.paddedBatch, paddedBatchBytes(problem))])
                    + workspaceByteCount(method, problem: problem, inputType: inputType)
            }
        }.max() ?? 0
    }

    /// How a packed batch runs.
    enum VariableLengthCall {
        /// One dense call on views of the pack: over all of it (equal lengths) or over one
        /// sequence starting at these tokens.
        case dense(problem: AttentionProblem, firstQuery: Int, firstKey: Int)
        /// These sequences padded into one dense batch of this problem (as many of the
        /// longest's length, causal).
        case padded(problem: AttentionProblem, sequences: Range<Int>)
    }

    /// The calls of a packed batch: one dense call over all of it when every sequence has the
    /// same query and key lengths; else, group by group of up to
    /// ``VariableLengthKernelDescriptor/maxSequences`` sequences, one padded batch where
    /// ``paddedGroupLength(_:method:causal:)`` says so and the tensors are `aligned` (16-byte
    /// addresses, strides of whole 16 bytes), one call per sequence with queries elsewhere.
    static func variableLengthCalls(
        _ batch: VariableLengthBatch, method: AttentionMethod, causal: Bool, softmaxScale: Float?, aligned: Bool
    ) throws(AttentionError) -> [VariableLengthCall] {
        let cq = batch.cuSeqlensQ, ck = batch.cuSeqlensK
        let queries = zip(cq, cq.dropFirst()).map { $1 - $0 }, keys = zip(ck, ck.dropFirst()).map { $1 - $0 }
        if let empty = queries.indices.first(where: { queries[$0] > 0 && keys[$0] == 0 }) {
            throw .invalidDimension(
                name: "cuSeqlensK", value: empty, requirement: "sequence \(empty) has \(queries[empty]) queries but no keys")
        }
        func problem(batch count: Int, _ nq: Int, _ nk: Int) throws(AttentionError) -> AttentionProblem {
            try AttentionProblem(
                batch: count, heads: batch.heads, kvHeads: batch.kvHeads, queryLength: nq, keyLength: nk, headDim: batch.headDim,
                softmaxScale: softmaxScale, causal: causal)
        }
        if let nq = queries.first, let nk = keys.first, nq > 0, queries.allSatisfy({ $0 == nq }), keys.allSatisfy({ $0 == nk }) {
            return [.dense(problem: try problem(batch: batch.batch, nq, nk), firstQuery: 0, firstKey: 0)]
        }
        var calls: [VariableLengthCall] = []
        let groupSize = VariableLengthKernelDescriptor.maxSequences
        for first in stride(from: 0, to: batch.batch, by: groupSize) {
            let sequences = first..<min(first + groupSize, batch.batch)
            let group = try VariableLengthBatch(
                cuSeqlensQ: cq[sequences.lowerBound...sequences.upperBound].map { $0 - cq[first] },
                cuSeqlensK: ck[sequences.lowerBound...sequences.upperBound].map { $0 - ck[first] },
                heads: batch.heads, kvHeads: batch.kvHeads, headDim: batch.headDim)
            if aligned, batch.headDim % 8 == 0, let length = paddedGroupLength(group, method: method, causal: causal) {
                calls.append(.padded(problem: try problem(batch: sequences.count, length, length), sequences: sequences))
                continue
            }
            for b in sequences where queries[b] > 0 {
                calls.append(.dense(problem: try problem(batch: 1, queries[b], keys[b]), firstQuery: cq[b], firstKey: ck[b]))
            }
        }
        return calls
    }

    /// The padded length when a pack should run as one padded dense batch, else nil. Padding
    /// is exact for causal attention with as many queries as keys in every sequence (a real
    /// query sees no padding key), for `int8` (given each sequence's own channel statistics,
    /// whose double sums stay exact up to 8192 tokens) and `fp16`. It pays when the calls it
    /// saves cost more than the padding: at least 8 sequences, padded to at most twice
    /// their tokens.
    public static func paddedGroupLength(_ batch: VariableLengthBatch, method: AttentionMethod, causal: Bool) -> Int? {
        guard causal, method == .int8 || method == .fp16, batch.cuSeqlensQ == batch.cuSeqlensK, batch.batch >= 8,
              batch.batch <= VariableLengthKernelDescriptor.maxSequences else { return nil }
        let longest = batch.maxLengths.query
        guard longest >= 1, longest <= 8192, batch.batch * longest <= 2 * batch.totalQueryTokens else { return nil }
        return longest
    }

    /// Bytes of a padded batch's buffers: Q, K, V and the output [B, L, H or Hkv, D] (16-bit),
    /// K's mean and V's amax [B, Hkv, D] (fp32), each 256-aligned.
    static func paddedBatchBytes(_ p: AttentionProblem) -> Int {
        paddedBatchLayout(p).reduce(0, +)
    }

    private static func paddedBatchLayout(_ p: AttentionProblem) -> [Int] {
        let rows = p.batch * p.queryLength, stats = p.batch * p.kvHeads * p.headDim * 4
        let sizes = [rows * p.heads * p.headDim * 2, rows * p.kvHeads * p.headDim * 2, rows * p.kvHeads * p.headDim * 2,
                     rows * p.heads * p.headDim * 2, stats, stats]
        return sizes.map { ($0 + DeviceWorkspace.alignment - 1) / DeviceWorkspace.alignment * DeviceWorkspace.alignment }
    }

    /// Runs a ``VariableLengthCall/padded(problem:sequences:)`` call (`starts`: its sequences'
    /// B + 1 offsets in the pack): measures each sequence's channel
    /// statistics (`int8`) and copies the pack into the padded batch, runs the dense call on
    /// it with those statistics, and copies the real rows of its output back.
    private func forwardPadded(
        _ method: AttentionMethod, problem: AttentionProblem, starts: [Int], q: DeviceTensor, k: DeviceTensor, v: DeviceTensor,
        output: DeviceTensor, stream: CUDAStream?, workspace: DeviceWorkspace?, options: AttentionOptions
    ) throws(AttentionError) {
        guard let input = KernelFloatType(q.elementType), k.elementType == q.elementType, v.elementType == q.elementType,
              KernelFloatType(output.elementType) != nil else {
            throw .invalidDeviceTensor(tensor: "q/k/v/output", reason: "must be fp16 or bf16, q, k and v alike")
        }
        let total = starts.last ?? 0
        guard total <= Int(Int32.max) else {
            throw .invalidDimension(name: "cuSeqlensQ", value: total, requirement: "at most 2^31 − 1 tokens in a pack")
        }
        let (b, l, h, hkv, d) = (problem.batch, problem.queryLength, problem.heads, problem.kvHeads, problem.headDim)
        for (name, tensor, heads) in [("q", q, h), ("k", k, hkv), ("v", v, hkv), ("output", output, h)] {
            try Self.validateStrides(tensor, name)
            try Self.validateSpan(tensor, name, batch: 1, heads: heads, tokens: total, width: d)
        }
        let layout = Self.paddedBatchLayout(problem), regionBytes = layout.reduce(0, +)
        // The group's offsets, by value after the parameter block (varlen_pad.cu).
        let offsets = KernelArray(starts.map { Int32($0) }, count: VariableLengthKernelDescriptor.maxSequences + 1)
        var p = VariableLengthParams()
        var rest: DeviceWorkspace?
        try serialized(stream: stream, workspace: workspace) { (call) throws(AttentionError) in
            let base = try workspaceAddresses([(.paddedBatch, regionBytes)], lent: call.workspace)[.paddedBatch] ?? 0
            if let lent = call.workspace {
                let used = Int(base - lent.address) + regionBytes
                rest = DeviceWorkspace(address: base + UInt64(regionBytes), byteCount: max(lent.byteCount - used, 0))
            }
            var next = base
            var addresses: [UInt64] = []
            for size in layout {
                addresses.append(next)
                next += UInt64(size)
            }
            (p.paddedQuery, p.paddedKey, p.paddedValue, p.paddedOut) = (addresses[0], addresses[1], addresses[2], addresses[3])
            (p.keyMean, p.valueAmax) = (method == .int8 ? addresses[4] : 0, addresses[5])
            (p.query, p.key, p.value, p.out) = (q.address, k.address, v.address, output.address)
            (p.sequences, p.paddedLength, p.heads, p.kvHeads, p.headDim) = (Int64(b), Int64(l), Int64(h), Int64(hkv), Int64(d))
            (p.qStrideToken, p.qStrideHead) = (Int64(q.strides.token), Int64(q.strides.head))
            (p.kStrideToken, p.kStrideHead) = (Int64(k.strides.token), Int64(k.strides.head))
            (p.vStrideToken, p.vStrideHead) = (Int64(v.strides.token), Int64(v.strides.head))
            (p.oStrideToken, p.oStrideHead) = (Int64(output.strides.token), Int64(output.strides.head))
            func kernel(_ stage: VariableLengthKernelDescriptor.Stage) -> VariableLengthKernelDescriptor {
                VariableLengthKernelDescriptor(stage: stage, input: input, arch: architecture)
            }
            if method == .int8 {
                let statistics = kernel(.statistics)
                try launch(statistics, grid: LaunchDimensions(hkv, b), block: statistics.block, params: p, on: call.stream, more: [offsets])
            }
            let pad = kernel(.pad)
            try launch(pad, grid: LaunchDimensions(l, b), block: pad.block, params: p, on: call.stream, more: [offsets])
        }
        func padded(_ address: UInt64, _ type: ElementType, heads: Int) -> DeviceTensor {
            DeviceTensor(address: address, elementType: type, layout: .bnhd, heads: heads, tokens: l, headDim: d)
        }
        let (pq, pk, pv) = (padded(p.paddedQuery, q.elementType, heads: h), padded(p.paddedKey, k.elementType, heads: hkv),
                            padded(p.paddedValue, v.elementType, heads: hkv))
        let paddedOutput = padded(p.paddedOut, output.elementType, heads: h)
        if method == .int8 {
            let codes = try quantize(
                method, problem: problem, q: pq, k: pk, v: pv, statistics: ChannelStatistics(keyMean: p.keyMean, valueAmax: p.valueAmax),
                stream: stream, workspace: rest)
            try forward(quantized: codes, problem: problem, output: paddedOutput, stream: stream, options: options)
        } else {
            try forward(method, problem: problem, q: pq, k: pk, v: pv, output: paddedOutput, stream: stream, workspace: rest, options: options)
        }
        try serialized(stream: stream, workspace: workspace) { (call) throws(AttentionError) in
            let unpad = VariableLengthKernelDescriptor(stage: .unpad, input: input, arch: architecture)
            try launch(unpad, grid: LaunchDimensions(l, b), block: unpad.block, params: p, on: call.stream, more: [offsets])
        }
    }
}
