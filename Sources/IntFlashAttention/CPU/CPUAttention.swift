/// Result of a CPU attention call.
public struct CPUAttentionOutput: Sendable {
    /// B·H·Nq·D fp32 output in BHND order.
    public var output: [Float]
    /// [B, H, Nq] natural-log log-sum-exp of each row's scaled scores (−∞ for rows that see
    /// no key); empty when not requested.
    public var logSumExp: [Float]

    /// Creates an output from its fields.
    public init(output: [Float], logSumExp: [Float]) {
        self.output = output
        self.logSumExp = logSumExp
    }
}

/// Attention on the CPU: the float64 oracle (`reference`) and tiled online-softmax kernels for
/// every `AttentionMethod`, each following docs/SCHEMES.md block by block (key blocks of
/// `AttentionMethod.keyBlock`; the `int8` scheme's tiles of ``KeyGroups/tileKeys``),
/// multithreaded over (batch, head, query block).
///
/// Non-finite inputs follow ``InputScreen``'s contract: the array entry points never throw
/// for them and return NaN in exactly the rows they reach; the ``AttentionTensor`` entry point
/// throws for them unless told not to validate. Before allocating, every entry point checks
/// that the host can give it the memory it needs (`outOfMemory` otherwise).
public enum CPUAttention {
    /// Query rows per work item (a multiple of the AVX-512 tile's 6-row register tile).
    static let queryBlock = 48

    /// Runs `method` on fp32 inputs in BHND order (q: B·H·Nq·D, k and v: B·Hkv·Nk·D) with
    /// `threads` workers (default: every core) on the default instruction set
    /// (`CPUKernelISA.fromEnvironment()`). Throws `shapeMismatch` for wrong element counts;
    /// NaN/Inf inputs (and, for `fp16`, values that overflow fp16) give NaN in exactly the
    /// output rows they reach (``InputScreen``).
    public static func run(
        _ method: AttentionMethod, problem: AttentionProblem, q: [Float], k: [Float], v: [Float], threads: Int? = nil
    ) throws(AttentionError) -> CPUAttentionOutput {
        try run(method, problem: problem, q: q, k: k, v: v, threads: threads, isa: .fromEnvironment(), computeLogSumExp: true)
    }

    /// `run` on an explicit instruction set (lowered to what the CPU supports), optionally
    /// without the log-sum-exp.
    public static func run(
        _ method: AttentionMethod, problem: AttentionProblem, q: [Float], k: [Float], v: [Float],
        threads: Int? = nil, isa: CPUKernelISA, computeLogSumExp: Bool = true
    ) throws(AttentionError) -> CPUAttentionOutput {
        try problem.validate()
        try validateCounts(problem, q: q, k: k, v: v)
        if problem.isEmpty { return CPUAttentionOutput(output: [], logSumExp: []) }
        let options = TileRunOptions(threads: threads, isa: isa.clampedToSupported, computeLogSumExp: computeLogSumExp)
        guard let offending = OffendingInputs.find(problem: problem, q: q, k: k, v: v, limit: InputScreen.limit(for: method)) else {
            try reserveHostMemory(method, problem: problem, threads: threads)
            return try compute(method, problem: problem, q: q, k: k, v: v, options: options)
        }
        try reserveHostMemory(method, problem: problem, threads: threads, offending: true)
        var result = try compute(
            method, problem: problem, q: offending.cleaned(q), k: offending.cleaned(k), v: offending.cleaned(v),
            options: options)
        offending.poison(output: &result.output, logSumExp: &result.logSumExp)
        return result
    }

    /// The method's tiles on inputs free of offending elements.
    private static func compute(
        _ method: AttentionMethod, problem: AttentionProblem, q: [Float], k: [Float], v: [Float], options: TileRunOptions
    ) throws(AttentionError) -> CPUAttentionOutput {
        switch method {
        case .int8, .int8Paper, .int4:
            let quantized = try QuantizedAttentionInputs.quantize(
                method: method, problem: problem, q: q, k: k, v: v, threads: options.threads)
            var result = IntegerAttentionPath.run(quantized, options: options)
            // Smoothing K shifted every score of a row by the same amount; the exact
            // log-sum-exp has it back.
            if method != .int8Paper && options.computeLogSumExp {
                let shift = KeySmoothing.logSumExpShift(problem: problem, q: q, k: k)
                for row in result.logSumExp.indices { result.logSumExp[row] += shift[row] }
            }
            return result
        case .fp32, .fp16, .fp8E4M3, .fp8E5M2:
            return try FloatAttentionPath.run(method, problem: problem, q: q, k: k, v: v, options: options)
        }
    }

    /// Throws `shapeMismatch` unless q, k, v hold the problem's element counts.
    static func validateCounts(_ p: AttentionProblem, q: [Float], k: [Float], v: [Float]) throws(AttentionError) {
        let expectations: [(String, Int, Int, String)] = [
            ("q", q.count, p.queryElementCount, "[\(p.batch), \(p.heads), \(p.queryLength), \(p.headDim)]"),
            ("k", k.count, p.keyElementCount, "[\(p.batch), \(p.kvHeads), \(p.keyLength), \(p.headDim)]"),
            ("v", v.count, p.keyElementCount, "[\(p.batch), \(p.kvHeads), \(p.keyLength), \(p.headDim)]"),
        ]
        for (name, actual, expected, shape) in expectations where actual != expected {
            throw .shapeMismatch(tensor: name, expected: "\(expected) elements \(shape) (BHND)", actual: "\(actual) elements")
        }
    }
}

/// How the tiles of one call run.
struct TileRunOptions {
    var threads: Int?
    var isa: CPUKernelISA
    var computeLogSumExp: Bool
}
