import ArgumentParser
import Foundation
import IntFlashAttention

/// `intfa accuracy`: the paper's accuracy experiment, extended.
struct Accuracy: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compare each method's output with exact float64 attention.",
        discussion: """
            For every distribution, sequence length and head dim, draws fresh Q, K, V, computes \
            exact attention in float64 and each method on the CPU path (or, with --backend cuda, \
            on the GPU from fp16-rounded inputs), and reports the errors over all output \
            elements: MRE (mean of |O−R|/(|R|+1e-5)), relative L1 (Σ|O−R|/Σ|R|), RMSE, cosine \
            similarity and max |O−R|; and the relative L1 of each (batch, head) on its own: their \
            mean and the worst.
            With --input, the same on your own tensors (.npy, fp16 or fp32, [H,N,D] or [B,H,N,D]).
            """
    )

    @Flag(help: "Only N = 1024 and 2048.")
    var quick = false

    @Option(help: "Input distributions.")
    var distribution = CommaSeparated(InputDistribution.allCases)

    @Option(help: "Methods to evaluate.")
    var method = CommaSeparated<AttentionMethod>([.fp16, .fp8E4M3, .fp8E5M2, .int8Paper, .int8, .int4])

    // Numeric options take the next argument whatever it starts with, so that a negative
    // value is refused by name in validate() instead of reported as a missing value.
    @Option(parsing: .unconditional, help: "Sequence lengths (Nq = Nk). Default 1024…16384, or 1024,2048 with --quick.")
    var seqlen: CommaSeparated<Int>?

    @Option(name: .customLong("head-dim"), parsing: .unconditional, help: "Head dimensions.")
    var headDim = CommaSeparated([64, 128])

    @Option(parsing: .unconditional, help: "Batch size.")
    var batch = 1

    @Option(parsing: .unconditional, help: "Query heads (and key/value heads).")
    var heads = 1

    @Flag(help: "Causal masking.")
    var causal = false

    @Option(help: "Seed of the input generator (each configuration derives its own stream).")
    var seed: UInt64 = 2409

    @Option(name: .customLong("input"), parsing: .upToNextOption, help: "Q.npy K.npy V.npy: evaluate on these tensors.")
    var inputFiles: [String] = []

    @Option(name: .customLong("softmax-scale"), parsing: .unconditional, help: "Softmax scale for --input (default 1/sqrt(D)).")
    var softmaxScale: Float?

    @Flag(name: .customLong("skip-validation"), help: "Do not refuse NaN/Inf inputs: the rows they reach come out NaN, and so do the metrics.")
    var skipValidation = false

    @Option(parsing: .unconditional, help: "CPU threads (default: all).")
    var threads: Int?

    @Option(help: "Where the methods run: cpu, or cuda (fp16-rounded inputs; the GPU's methods only).")
    var backend: AccuracyBackend = .cpu

    @Option(help: "CUDA device ordinal (with --backend cuda).")
    var device = 0

    @Flag(help: "Print JSON records instead of a table.")
    var json = false

    @Flag(help: "Print only relative L1, one column per method.")
    var summary = false

    func validate() throws {
        if !inputFiles.isEmpty && inputFiles.count != 3 {
            throw ValidationError("--input takes exactly three files: Q.npy K.npy V.npy")
        }
        if let seqlen, let bad = seqlen.values.first(where: { $0 < 1 }) {
            throw ValidationError("--seqlen values must be at least 1, not \(bad)")
        }
        if let bad = headDim.values.first(where: { $0 < 1 }) {
            throw ValidationError("--head-dim values must be at least 1, not \(bad)")
        }
        for (name, value) in [("--batch", batch), ("--heads", heads), ("--threads", threads ?? 1)] where value < 1 {
            throw ValidationError("\(name) must be at least 1, not \(value)")
        }
        if let softmaxScale, !(softmaxScale.isFinite && softmaxScale > 0) {
            throw ValidationError("--softmax-scale must be a finite positive number, not \(softmaxScale)")
        }
    }

    func run() throws {
        let engine = backend == .cuda ? try reportingErrors { try CUDAAttention(device: device) } : nil
        let records = try reportingErrors {
            inputFiles.isEmpty ? try syntheticRecords(engine) : try fileRecords(engine)
        }
        if json {
            try printJSON(records)
        } else if summary {
            print(Self.summaryTable(records, methods: method.values))
        } else {
            print(Self.table(records))
        }
    }

    private func syntheticRecords(_ engine: CUDAAttention?) throws(AttentionError) -> [AccuracyRecord] {
        let lengths = seqlen?.values ?? (quick ? [1024, 2048] : [1024, 2048, 4096, 8192, 16384])
        var records: [AccuracyRecord] = []
        let progress = ProgressLine(enabled: true)
        var configIndex: UInt64 = 0
        for dist in distribution.values {
            for d in headDim.values {
                for n in lengths {
                    configIndex += 1
                    progress.update("accuracy: \(dist.rawValue) N=\(n) D=\(d)")
                    let problem = try AttentionProblem(
                        batch: batch, heads: heads, queryLength: n, keyLength: n, headDim: d,
                        softmaxScale: dist.softmaxScale(headDim: d), causal: causal)
                    var generator = SplitMix64(seed: seed &+ configIndex &* 0x9E37_79B9)
                    // The inputs themselves are one fp32 copy; the reference and every method come on top.
                    for m in method.values {
                        try CPUAttention.reserveHostMemory(m, problem: problem, threads: threads, inputCopies: 1)
                    }
                    let (q, k, v) = dist.makeInputs(for: problem, using: &generator)
                    records += try evaluate(problem: problem, q: q, k: k, v: v, label: dist.rawValue, engine: engine)
                }
            }
        }
        progress.finish()
        return records
    }

    private func fileRecords(_ engine: CUDAAttention?) throws(AttentionError) -> [AccuracyRecord] {
        let tensors = try inputFiles.map { (path: String) throws(AttentionError) in try NPYFile.read(path: path) }
        let (q, k, v) = (tensors[0], tensors[1], tensors[2])
        if !skipValidation {
            for (name, tensor) in zip(["Q", "K", "V"], tensors) { try tensor.validateFinite(name: name) }
        }
        guard k.batch == v.batch, k.heads == v.heads, k.tokens == v.tokens, k.headDim == v.headDim else {
            throw .shapeMismatch(tensor: "V", expected: k.shapeDescription, actual: v.shapeDescription)
        }
        guard q.batch == k.batch, q.headDim == k.headDim else {
            throw .shapeMismatch(
                tensor: "K", expected: "batch \(q.batch) and head dim \(q.headDim) as Q", actual: k.shapeDescription)
        }
        let problem = try AttentionProblem(
            batch: q.batch, heads: q.heads, kvHeads: k.heads, queryLength: q.tokens, keyLength: k.tokens,
            headDim: q.headDim, softmaxScale: softmaxScale, causal: causal)
        // An empty output has no error to measure: every metric would read as perfect.
        if problem.isEmpty {
            throw .invalidDimension(
                name: problem.batch == 0 ? "batch" : "queryLength", value: 0,
                requirement: "must be at least 1 to measure accuracy (\(inputFiles[0]) has shape \(q.shapeDescription))")
        }
        let label = URL(fileURLWithPath: inputFiles[0]).lastPathComponent
        return try evaluate(problem: problem, q: q.floatsBHND(), k: k.floatsBHND(), v: v.floatsBHND(), label: label, engine: engine)
    }

    private func evaluate(
        problem: AttentionProblem, q: [Float], k: [Float], v: [Float], label: String, engine: CUDAAttention?
    ) throws(AttentionError) -> [AccuracyRecord] {
        // The GPU reads fp16: there the reference takes the same rounded inputs.
        var (q, k, v) = (q, k, v)
        var deviceInputs: (q: AttentionTensor, k: AttentionTensor, v: AttentionTensor)?
        if engine != nil {
            func tensor(_ values: [Float], heads: Int, tokens: Int) throws(AttentionError) -> AttentionTensor {
                try AttentionTensor(converting: values, to: .float16, batch: problem.batch, heads: heads, tokens: tokens, headDim: problem.headDim)
            }
            let rounded = try (q: tensor(q, heads: problem.heads, tokens: problem.queryLength),
                               k: tensor(k, heads: problem.kvHeads, tokens: problem.keyLength),
                               v: tensor(v, heads: problem.kvHeads, tokens: problem.keyLength))
            (q, k, v) = (rounded.q.floatsBHND(), rounded.k.floatsBHND(), rounded.v.floatsBHND())
            deviceInputs = rounded
        }
        let reference = try CPUAttention.reference(problem, q: q, k: k, v: v)
        var records: [AccuracyRecord] = []
        for m in method.values {
            let output: [Float]
            if let engine, let deviceInputs {
                guard engine.methods.contains(m) else { continue }
                output = try engine.run(m, problem: problem, q: deviceInputs.q, k: deviceInputs.k, v: deviceInputs.v, outputType: .float32)
                    .output.floatsBHND()
            } else {
                output = try CPUAttention.run(m, problem: problem, q: q, k: k, v: v, threads: threads).output
            }
            records.append(AccuracyRecord(distribution: label, method: m, problem: problem, output: output, reference: reference))
        }
        return records
    }

    /// Relative L1 with one row per (distribution, N, D) and one column per method.
    static func summaryTable(_ records: [AccuracyRecord], methods: [AttentionMethod]) -> String {
        var table = TextTable(["distribution", "N", "D"] + methods.map(\.rawValue))
        var index: [String: Int] = [:]
        for r in records {
            let key = "\(r.distribution) \(r.seqlenQ) \(r.seqlenK) \(r.headDim)"
            if index[key] == nil {
                index[key] = table.rows.count
                table.append([r.distribution, "\(r.seqlenK)", "\(r.headDim)"] + methods.map { _ in "-" })
            }
            if let row = index[key], let column = methods.firstIndex(where: { $0.rawValue == r.method }) {
                table.rows[row][3 + column] = formatted(r.relL1)
            }
        }
        return table.rendered
    }

    static func table(_ records: [AccuracyRecord]) -> String {
        var table = TextTable(["distribution", "method", "N", "D", "MRE", "rel L1", "RMSE", "cos", "max abs", "heads: mean", "worst"])
        for r in records {
            table.append([
                r.distribution, r.method, "\(r.seqlenK)", "\(r.headDim)",
                formatted(r.mre), formatted(r.relL1), formatted(r.rmse),
                String(format: "%.6f", r.cos), formatted(r.maxAbs), formatted(r.relL1HeadMean), formatted(r.relL1HeadWorst),
            ])
        }
        return table.rendered
    }
}

/// One row of `intfa accuracy --json`.
struct AccuracyRecord: Codable, Sendable {
    var distribution: String
    var method: String
    var batch: Int
    var heads: Int
    var seqlenQ: Int
    var seqlenK: Int
    var headDim: Int
    var causal: Bool
    var mre: Double
    var relL1: Double
    var rmse: Double
    var cos: Double
    var maxAbs: Double
    /// Relative L1 of each (batch, head) on its own: the mean over them, and the largest.
    var relL1HeadMean: Double
    var relL1HeadWorst: Double

    enum CodingKeys: String, CodingKey {
        case distribution, method, batch, heads, causal, mre, rmse, cos
        case seqlenQ = "seqlen_q", seqlenK = "seqlen_k", headDim = "head_dim"
        case relL1 = "rel_l1", maxAbs = "max_abs"
        case relL1HeadMean = "rel_l1_head_mean", relL1HeadWorst = "rel_l1_head_worst"
    }

    /// The metrics of `output` against `reference` (both BHND): over all elements, and per
    /// (batch, head).
    init(distribution: String, method: AttentionMethod, problem: AttentionProblem, output: [Float], reference: [Double]) {
        let metrics = ErrorMetrics(output: output, reference: reference)
        self.distribution = distribution
        self.method = method.rawValue
        batch = problem.batch
        heads = problem.heads
        seqlenQ = problem.queryLength
        seqlenK = problem.keyLength
        headDim = problem.headDim
        causal = problem.causal
        mre = metrics.meanRelativeError
        relL1 = metrics.relativeL1
        rmse = metrics.rootMeanSquaredError
        cos = metrics.cosineSimilarity
        maxAbs = metrics.maxAbsoluteError
        let slice = problem.queryLength * problem.headDim
        let perHead = (0..<(problem.batch * problem.heads)).map { head in
            ErrorMetrics(output: output[head * slice..<(head + 1) * slice], reference: Array(reference[head * slice..<(head + 1) * slice])).relativeL1
        }
        relL1HeadMean = perHead.isEmpty ? 0 : perHead.reduce(0, +) / Double(perHead.count)
        relL1HeadWorst = perHead.max() ?? 0
    }
}

/// Where `intfa accuracy` runs the methods.
enum AccuracyBackend: String, ExpressibleByArgument, CaseIterable {
    case cpu, cuda
}
