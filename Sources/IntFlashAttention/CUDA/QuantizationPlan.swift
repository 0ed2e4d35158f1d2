/// What preparing one call's inputs does under one method, decided in one place: which
/// tensors get channel statistics, which quantization kernel codes each, and the workspace
/// slots all of that uses. ``CUDAAttention/prepareInputs`` runs it and
/// ``CUDAAttention/workspaceByteCount(_:problem:inputType:)`` sizes it, so the two cannot
/// disagree.
struct QuantizationPlan {
    /// One of the three inputs.
    enum Operand: CaseIterable {
        case query, key, value
    }

    let method: AttentionMethod
    let problem: AttentionProblem
    let inputType: ElementType
    /// The codes and scales go to the caller's buffers rather than the workspace.
    let quantizedIntoCaller: Bool
    /// K's channel mean and V's channel amax come from the caller (`int8` schemes only).
    let suppliedStatistics: Bool

    init(
        _ method: AttentionMethod, problem: AttentionProblem, inputType: ElementType,
        quantizedIntoCaller: Bool = false, suppliedStatistics: Bool = false
    ) {
        self.method = method
        self.problem = problem
        self.inputType = inputType
        self.quantizedIntoCaller = quantizedIntoCaller
        self.suppliedStatistics = suppliedStatistics
    }

    /// `fp16` quantizes nothing: a screen marks offending inputs and, from bf16, writes fp16 copies.
    var screensOnly: Bool { method == .fp16 }

    /// The tensors whose channel statistics are measured, in launch order: V's amax for its
    /// scales, K's mean for `int8`'s smoothing, and every tensor's amax for FP8's per-tensor
    /// scales. Statistics the caller supplies are not measured.
    var measured: [Operand] {
        switch method {
        case .fp8E4M3: return [.value, .key, .query]
        case .int8: return suppliedStatistics ? [] : [.value, .key]
        case .int8Paper: return suppliedStatistics ? [] : [.value]
        default: return []
        }
    }

    /// The code the quantizers write.
    var code: QuantizationKernelDescriptor.Code { method == .fp8E4M3 ? .e4m3 : .int8 }

    /// The kernel that codes `operand` (nil for `fp16`, which codes nothing).
    func kernel(for operand: Operand) -> QuantizationKernelDescriptor.Kind? {
        guard !screensOnly else { return nil }
        let perTensor = method == .fp8E4M3
        switch operand {
        case .query: return .rows(code, perTensor: perTensor)
        case .key: return method == .int8 ? .keyGroups : .rows(code, perTensor: perTensor)
        case .value: return .transposedV(code, perTensor: method != .int8)
        }
    }

    /// Whether the call measures the K mean that smooths K (`int8`, without supplied
    /// statistics): the kernel that restores the exact log-sum-exp reads it.
    var measuresKeyMean: Bool { measured.contains(.key) && method == .int8 }

    /// (batch·heads, tokens) of `operand`.
    func extent(of operand: Operand) -> (slices: Int, tokens: Int) {
        switch operand {
        case .query: return (problem.batch * problem.heads, problem.queryLength)
        case .key, .value: return (problem.batch * problem.kvHeads, problem.keyLength)
        }
    }

    /// The slots of `operand`'s channel mean and amax.
    static func statisticsSlots(of operand: Operand) -> (mean: WorkspaceSlot, amax: WorkspaceSlot) {
        switch operand {
        case .query: return (.qMean, .qAmax)
        case .key: return (.kMean, .kAmax)
        case .value: return (.vMean, .vAmax)
        }
    }

    /// The workspace slots (and their sizes in bytes) the plan uses: the marks of offending
    /// inputs and fp16 copies of bf16 inputs for `fp16`; otherwise the measured tensors'
    /// statistics, the partial sums behind them (one buffer, sized for the largest: the
    /// kernels run in order on one stream), and the codes and scales unless they go to the
    /// caller's buffers.
    var workspaceRequests: [(WorkspaceSlot, Int)] {
        let p = problem
        let d = p.headDim
        if screensOnly {
            let marks: [(WorkspaceSlot, Int)] = [(.rowMarks, p.batch * p.heads * p.queryLength), (.keyMarks, p.batch * p.kvHeads * 4)]
            guard inputType == .bfloat16 else { return marks }
            return marks + [(.qCodes, p.queryElementCount * 2), (.kCodes, p.keyElementCount * 2), (.vCodes, p.keyElementCount * 2)]
        }
        var requests: [(WorkspaceSlot, Int)] = []
        if !quantizedIntoCaller {
            let bytes = QuantizedDeviceInputs.byteCounts(method: method, problem: p)
            requests += [(.qCodes, bytes.q), (.qScales, bytes.qScale), (.kCodes, bytes.k),
                         (.kScales, bytes.kScale), (.vCodes, bytes.vt), (.vScales, bytes.vScale)]
        }
        var partials = 0
        for operand in measured {
            let (slices, tokens) = extent(of: operand)
            let slots = Self.statisticsSlots(of: operand)
            requests += [(slots.mean, slices * d * 4), (slots.amax, slices * d * 4)]
            // fp64 sums and fp32 maxima per chunk of tokens.
            partials = max(partials, slices * max(Self.statisticsChunks(tokens: tokens), 1) * d * 12)
        }
        if partials > 0 { requests.append((.statsPartials, partials)) }
        return requests
    }

    /// Chunks of the channel-statistics partial sums for `tokens` tokens.
    static func statisticsChunks(tokens: Int) -> Int {
        (tokens + QuantizationKernelDescriptor.statsChunkTokens - 1) / QuantizationKernelDescriptor.statsChunkTokens
    }
}
