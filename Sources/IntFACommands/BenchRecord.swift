import IntFlashAttention

/// One row of `intfa bench --json`. CPU rows carry `gops`; GPU rows carry `tops` and
/// `includes_quantization`.
struct BenchRecord: Codable, Sendable {
    var backend: String
    var kernel: String
    var batch: Int
    var heads: Int
    var kvHeads: Int
    var seqlenQ: Int
    var seqlenK: Int
    var headDim: Int
    var causal: Bool
    var ms: Double
    var gops: Double?
    var tops: Double?
    var includesQuantization: Bool?
    /// Decode rows (kernels named `decode-…`): the bytes a step must read, the bandwidth that
    /// makes (GB/s), the device's measured copy bandwidth and the fraction of it achieved.
    var bytesRead: Int?
    var bandwidthGBs: Double?
    var copyBandwidthGBs: Double?
    var bandwidthFraction: Double?
    /// Decode rows: how the L2 was emptied before each timed step (`clean` or `dirty`).
    var l2Flush: String?

    enum CodingKeys: String, CodingKey {
        case backend, kernel, batch, heads, causal, ms, gops, tops
        case kvHeads = "kv_heads", seqlenQ = "seqlen_q", seqlenK = "seqlen_k", headDim = "head_dim"
        case includesQuantization = "includes_quantization"
        case bytesRead = "bytes_read", bandwidthGBs = "bandwidth_gbs", copyBandwidthGBs = "copy_bandwidth_gbs"
        case bandwidthFraction = "bandwidth_fraction", l2Flush = "l2_flush"
    }

    init(backend: String, kernel: String, problem: AttentionProblem, ms: Double, includesQuantization: Bool? = nil) {
        self.backend = backend
        self.kernel = kernel
        batch = problem.batch
        heads = problem.heads
        kvHeads = problem.kvHeads
        seqlenQ = problem.queryLength
        seqlenK = problem.keyLength
        headDim = problem.headDim
        causal = problem.causal
        self.ms = ms
        let opsPerSecond = problem.operationCount / (ms / 1e3)
        if backend == "cpu" {
            gops = opsPerSecond / 1e9
        } else {
            tops = opsPerSecond / 1e12
            self.includesQuantization = includesQuantization
        }
    }
}
