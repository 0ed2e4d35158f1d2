extension CPUAttention {
    /// Runs `method` on tensors of any element type and layout. Q must be
    /// [batch, heads, Nq, headDim], K and V [batch, kvHeads, Nk, headDim] (each in its own
    /// layout). With `validateInputs` (the default) a NaN or ±Inf input throws
    /// `nonFiniteInput`, and for `fp16` a value that overflows fp16 throws `inputOutOfRange`;
    /// without it they give NaN in exactly the rows they reach (``InputScreen``). The output
    /// has Q's element type and layout.
    public static func run(
        _ method: AttentionMethod, problem: AttentionProblem,
        q: AttentionTensor, k: AttentionTensor, v: AttentionTensor,
        threads: Int? = nil, validateInputs: Bool = true
    ) throws(AttentionError) -> AttentionTensor {
        try problem.validate()
        let p = problem
        let tensors = [("q", q, p.heads, p.queryLength), ("k", k, p.kvHeads, p.keyLength), ("v", v, p.kvHeads, p.keyLength)]
        for (name, tensor, heads, tokens) in tensors {
            if tensor.batch != p.batch || tensor.heads != heads || tensor.tokens != tokens || tensor.headDim != p.headDim {
                let expected = tensor.layout == .bhnd
                    ? "[\(p.batch), \(heads), \(tokens), \(p.headDim)] (bhnd)"
                    : "[\(p.batch), \(tokens), \(heads), \(p.headDim)] (bnhd)"
                throw .shapeMismatch(tensor: name, expected: expected, actual: tensor.shapeDescription)
            }
        }
        // Widening and reordering make up to two fp32 copies of each input.
        try reserveHostMemory(method, problem: p, threads: threads, inputCopies: 2)
        let values = (q: q.floatsBHND(), k: k.floatsBHND(), v: v.floatsBHND())
        if validateInputs { try InputScreen.validate(method, q: values.q, k: values.k, v: values.v) }
        let result = try run(method, problem: p, q: values.q, k: values.k, v: values.v, threads: threads)
        let ordered = TensorLayout.bhnd.reorder(
            result.output, to: q.layout, batch: p.batch, heads: p.heads, tokens: p.queryLength, headDim: p.headDim)
        return try AttentionTensor(
            converting: ordered, to: q.elementType, batch: p.batch, heads: p.heads, tokens: p.queryLength,
            headDim: p.headDim, layout: q.layout)
    }
}
