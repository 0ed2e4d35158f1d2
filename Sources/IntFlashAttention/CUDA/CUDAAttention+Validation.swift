/// What the GPU kernels need of a call beyond ``AttentionProblem/validate()``, checked before
/// anything is queued: a kernel that reads a misaligned address stops with a sticky error that
/// poisons the whole CUDA context, so every such case is refused here with its reason.
extension CUDAAttention {
    /// Longest Nq or Nk: the kernels index tokens with 32-bit integers, and Nk is rounded up
    /// to a multiple of 64.
    public static let maxSequenceLength = Int(Int32.max) - 64
    /// Most heads and batch entries: the `mma.sync` kernels put them in grid y and z.
    public static let maxGridExtent = 65_535

    /// Sizes the kernels cannot index.
    static func validateLimits(_ problem: AttentionProblem) throws(AttentionError) {
        for (name, value) in [("queryLength", problem.queryLength), ("keyLength", problem.keyLength)]
        where value > maxSequenceLength {
            throw .invalidDimension(
                name: name, value: value,
                requirement: "must be at most \(maxSequenceLength) on the GPU (tokens are 32-bit indices)")
        }
        for (name, value) in [("batch", problem.batch), ("heads", problem.heads)] where value > maxGridExtent {
            throw .invalidDimension(name: name, value: value, requirement: "must be at most \(maxGridExtent) on the GPU")
        }
    }

    /// The fp16/bf16 inputs of ``forward(_:problem:q:k:v:output:logSumExp:stream:workspace:options:)``: element
    /// aligned with non-negative strides everywhere; 16-byte rows where the `fp16` kernel
    /// copies them straight into shared memory (fp16 inputs of the `fp16` method).
    static func validateInputs(_ method: AttentionMethod, q: DeviceTensor, k: DeviceTensor, v: DeviceTensor) throws(AttentionError) {
        for (name, tensor) in [("Q", q), ("K", k), ("V", v)] {
            guard tensor.elementType != .float32 else {
                throw .unsupportedMethod(method: method.rawValue, backend: "cuda", reason: "\(name) must be fp16 or bf16 on the GPU")
            }
            try validateStrides(tensor, name)
            try validateAlignment(tensor.address, bytes: 2, name, what: "its address")
            if method == .fp16 && tensor.elementType == .float16 {
                try validateAlignment(
                    tensor.address, bytes: 16, name,
                    what: "the fp16 kernel copies rows in 16-byte pieces, so its address")
                try validateStrideMultiple(tensor, of: 8, name, because: "the fp16 kernel copies rows in 16-byte pieces")
            }
        }
    }

    /// The output (fp16/bf16, written two elements at a time) and the log-sum-exp (fp32).
    static func validateOutput(_ output: DeviceTensor, logSumExp: UInt64?) throws(AttentionError) {
        try validateStrides(output, "output")
        try validateAlignment(output.address, bytes: 4, "output", what: "the kernels write pairs of elements, so its address")
        try validateStrideMultiple(output, of: 2, "output", because: "the kernels write pairs of elements")
        if let logSumExp { try validateAlignment(logSumExp, bytes: 4, "logSumExp", what: "its address") }
    }

    /// Pre-quantized inputs: codes and K scales are copied in 16-byte pieces (by TMA on
    /// Hopper), the other scales read as fp32.
    static func validateQuantized(_ inputs: QuantizedDeviceInputs) throws(AttentionError) {
        let pieces = "the kernels copy it in 16-byte pieces, so its address"
        try validateAlignment(inputs.q, bytes: 16, "quantized Q", what: pieces)
        try validateAlignment(inputs.k, bytes: 16, "quantized K", what: pieces)
        try validateAlignment(inputs.vt, bytes: 16, "quantized Vt", what: pieces)
        try validateAlignment(inputs.kScale, bytes: 16, "K scales", what: pieces)
        try validateAlignment(inputs.qScale, bytes: 4, "Q scales", what: "its address")
        try validateAlignment(inputs.vScale, bytes: 4, "V scales", what: "its address")
    }

    /// Caller-supplied channel statistics: fp32 buffers.
    static func validateStatistics(_ statistics: ChannelStatistics) throws(AttentionError) {
        try validateAlignment(statistics.keyMean, bytes: 4, "K channel mean", what: "its address")
        try validateAlignment(statistics.valueAmax, bytes: 4, "V channel amax", what: "its address")
    }

    static func validateAlignment(_ address: UInt64, bytes: UInt64, _ name: String, what: String) throws(AttentionError) {
        guard address != 0 else { throw .invalidDeviceTensor(tensor: name, reason: "the device address is null") }
        guard address % bytes == 0 else {
            throw .invalidDeviceTensor(
                tensor: name, reason: "\(what) must be \(bytes)-byte aligned (it is 0x\(String(address, radix: 16)))")
        }
    }

    static func validateStrides(_ tensor: DeviceTensor, _ name: String) throws(AttentionError) {
        let s = tensor.strides
        guard s.batch >= 0, s.head >= 0, s.token >= 0 else {
            throw .invalidDeviceTensor(
                tensor: name, reason: "negative strides are not supported (batch \(s.batch), head \(s.head), token \(s.token))")
        }
    }

    static func validateStrideMultiple(_ tensor: DeviceTensor, of n: Int, _ name: String, because: String) throws(AttentionError) {
        let s = tensor.strides
        guard s.batch % n == 0, s.head % n == 0, s.token % n == 0 else {
            throw .invalidDeviceTensor(
                tensor: name,
                reason: "\(because): its strides must be multiples of \(n) elements (batch \(s.batch), head \(s.head), token \(s.token))")
        }
    }

    /// The span of every tensor the problem's extents reach at its strides must fit in 64
    /// bits, and so must the address past it: offsets the kernels compute would wrap
    /// otherwise. (Whether the memory is the caller's cannot be known here; intfa.h says what
    /// the caller owes.)
    static func validateSpans(
        _ p: AttentionProblem, q: DeviceTensor? = nil, k: DeviceTensor? = nil, v: DeviceTensor? = nil,
        output: DeviceTensor? = nil
    ) throws(AttentionError) {
        let tensors: [(String, DeviceTensor?, Int, Int)] = [
            ("Q", q, p.heads, p.queryLength), ("K", k, p.kvHeads, p.keyLength), ("V", v, p.kvHeads, p.keyLength),
            ("output", output, p.heads, p.queryLength),
        ]
        for case let (name, tensor?, heads, tokens) in tensors {
            try validateSpan(tensor, name, batch: p.batch, heads: heads, tokens: tokens, width: p.headDim)
        }
    }

    /// Throws `tooLarge` unless `tensor`'s span for [batch, heads, tokens, width] at its
    /// strides, and the address past it, fit in 64 bits.
    static func validateSpan(
        _ tensor: DeviceTensor, _ name: String, batch: Int, heads: Int, tokens: Int, width: Int
    ) throws(AttentionError) {
        let s = tensor.strides
        guard let span = s.span(batch: batch, heads: heads, tokens: tokens, headDim: width),
              case let (bytes, overflow) = span.multipliedReportingOverflow(by: tensor.elementType.size), !overflow,
              !tensor.address.addingReportingOverflow(UInt64(bytes)).overflow
        else {
            throw .tooLarge(
                what: "\(name) of shape [\(batch), \(heads), \(tokens), \(width)] at element strides "
                    + "(\(s.batch), \(s.head), \(s.token), 1)",
                limit: "the address past its last element must fit in 64 bits")
        }
    }
}
