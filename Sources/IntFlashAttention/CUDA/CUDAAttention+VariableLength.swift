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
    /// tensors, at the dense kernel's speed. Mixed lengths run one dense call per sequence on
    /// `stream`, each a view into the packed tensors (no copies), sharing `workspace` (size:
    /// ``variableLengthWorkspaceByteCount(_:batch:inputType:)``); short sequences then use the
    /// device less well than one launch over the whole pack would. A sequence with queries but
    /// no keys is refused: its attention is undefined.
    public func forwardVariableLength(
        _ method: AttentionMethod, batch: VariableLengthBatch, q: DeviceTensor, k: DeviceTensor, v: DeviceTensor,
        output: DeviceTensor, causal: Bool = false, softmaxScale: Float? = nil, stream: CUDAStream? = nil,
        workspace: DeviceWorkspace? = nil, options: AttentionOptions = .init()
    ) throws(AttentionError) {
        for plan in try Self.variableLengthCalls(batch, causal: causal, softmaxScale: softmaxScale) {
            func view(_ tensor: DeviceTensor, first: Int, batchStride: Int) -> DeviceTensor {
                let offset = first * tensor.strides.token * tensor.elementType.size
                return DeviceTensor(
                    address: tensor.address &+ UInt64(offset), elementType: tensor.elementType,
                    strides: TensorStrides(batch: batchStride, head: tensor.strides.head, token: tensor.strides.token))
            }
            let (p, q0, k0) = (plan.problem, plan.firstQuery, plan.firstKey)
            try forward(
                method, problem: p, q: view(q, first: q0, batchStride: p.queryLength * q.strides.token),
                k: view(k, first: k0, batchStride: p.keyLength * k.strides.token),
                v: view(v, first: k0, batchStride: p.keyLength * v.strides.token),
                output: view(output, first: q0, batchStride: p.queryLength * output.strides.token),
                stream: stream, workspace: workspace, options: options)
        }
    }

    /// Device memory ``forwardVariableLength(_:batch:q:k:v:output:causal:softmaxScale:stream:workspace:options:)``
    /// needs as its workspace: the largest of its dense calls'.
    public static func variableLengthWorkspaceByteCount(
        _ method: AttentionMethod, batch: VariableLengthBatch, inputType: ElementType
    ) throws(AttentionError) -> Int {
        try variableLengthCalls(batch, causal: false, softmaxScale: nil)
            .map { workspaceByteCount(method, problem: $0.problem, inputType: inputType) }.max() ?? 0
    }

    /// The dense calls of a packed batch: one over all of it when every sequence has the same
    /// query and key lengths, else one per sequence with queries.
    static func variableLengthCalls(
        _ batch: VariableLengthBatch, causal: Bool, softmaxScale: Float?
    ) throws(AttentionError) -> [(problem: AttentionProblem, firstQuery: Int, firstKey: Int)] {
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
            return [(try problem(batch: batch.batch, nq, nk), 0, 0)]
        }
        var calls: [(problem: AttentionProblem, firstQuery: Int, firstKey: Int)] = []
        for b in queries.indices where queries[b] > 0 {
            calls.append((try problem(batch: 1, queries[b], keys[b]), cq[b], ck[b]))
        }
        return calls
    }
}
