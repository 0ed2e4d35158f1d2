import ArgumentParser
import Foundation
import IntFlashAttention

/// `intfa bench`: speed of the attention kernels, side by side in one run.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Time attention kernels side by side (median of repeated runs).",
        discussion: """
            CPU backend: the int8 path (quantization included) against the project's fp32 \
            FlashAttention on the same inputs, both using every thread: one untimed warm-up \
            run, then the median of --repeats timed runs; the speedup column is the first \
            --method's time divided by each method's.
            CUDA backend: int8 (on pre-quantized inputs), int8+quant (fp16 in, quantization \
            included), int8-paper, fp8-e4m3 (pre-quantized) and fp16, timed with CUDA events \
            after warm-up, median of --repeats runs, inputs rotated over enough copies to \
            defeat the L2 cache. Without shape options it runs the paper's configurations \
            (B=4, H=32, D=64) and the 16k-token sweep (B·N = 16384, H·D = 2048). --peers adds \
            records from bench/sdpa_baseline.py to the table and the chart.
            Operations are counted as 4·B·H·Nq·Nk·D, half when causal.
            With --decode (CUDA): one decode step (one new token per sequence) on the paged INT8 \
            KV cache, filled by the append kernels, and our fp16 kernel on contiguous fp16 K/V, \
            at B ∈ {1, 16, 64} × Nk ∈ {1k, 8k, 32k, 128k}, H=32, Hkv=8, D=128, pages of 64 \
            (or the shape options). Each row gives the bytes the step must read, the bandwidth \
            achieved and its fraction of the device's copy bandwidth, measured in the same run \
            (1 GiB device-to-device copies, read plus written bytes); the L2 cache is flushed \
            before every timed run.
            """
    )

    enum Backend: String, ExpressibleByArgument, CaseIterable {
        case cpu, cuda
    }

    @Option(help: "Backend to time: \(Backend.allCases.map(\.rawValue).joined(separator: ", ")).")
    var backend: Backend = .cpu

    // Numeric options take the next argument whatever it starts with, so that a negative
    // value is refused by name in validate() instead of reported as a missing value.
    @Option(parsing: .unconditional, help: "Batch size (CPU default 1).")
    var batch: Int?

    @Option(parsing: .unconditional, help: "Query heads (CPU default 8).")
    var heads: Int?

    @Option(name: .customLong("kv-heads"), parsing: .unconditional, help: "Key/value heads (default: heads).")
    var kvHeads: Int?

    @Option(parsing: .unconditional, help: "Sequence length, Nq = Nk (CPU default 4096).")
    var seqlen: Int?

    @Option(name: .customLong("head-dim"), parsing: .unconditional, help: "Head dimension (CPU default 128).")
    var headDim: Int?

    @Flag(help: "Causal masking.")
    var causal = false

    @Option(help: "CPU methods to time; the first is the baseline of the speedup column.")
    var method = CommaSeparated<AttentionMethod>([.fp32, .int8])

    @Option(parsing: .unconditional, help: "Timed runs per kernel, the median is reported (default: 5 on the CPU, 30 on the GPU).")
    var repeats: Int?

    @Option(parsing: .unconditional, help: "Untimed warm-up runs per GPU kernel (the CPU backend makes one).")
    var warmup = 5

    @Option(parsing: .unconditional, help: "CUDA device ordinal.")
    var device = 0

    @Flag(help: "GPU suites at N = 1k, 4k and 16k only (with --decode: Nk = 8k and 128k).")
    var quick = false

    @Flag(help: "Time decode steps on the paged INT8 KV cache against fp16 K/V (CUDA).")
    var decode = false

    @Option(name: .customLong("page-size"), parsing: .unconditional, help: "With --decode: tokens per cache page.")
    var pageSize = 64

    @Option(help: "With --decode: how the L2 is emptied before each timed step (clean: a zero fill then a read, so no dirty lines are left for the step to write back; dirty: the zero fill alone).")
    var flush: CacheFlushMode = .clean

    @Option(help: "JSON records of peer kernels (bench/sdpa_baseline.py) to show beside ours.")
    var peers: String?

    @Option(help: "Write a chart of TOPS against N to this SVG file.")
    var svg: String?

    @Option(help: "Render saved GPU records (from --json) instead of measuring.")
    var records: String?

    @Option(help: "GPU kernels to time (default: all): \(GPUBenchKernel.allCases.map(\.rawValue).joined(separator: ", ")).")
    var kernels = CommaSeparated(GPUBenchKernel.allCases)

    @Option(parsing: .unconditional, help: "CPU threads (default: all).")
    var threads: Int?

    @Flag(help: "Print JSON records instead of a table.")
    var json = false

    func validate() throws {
        for (name, value) in [("--batch", batch), ("--heads", heads), ("--kv-heads", kvHeads), ("--seqlen", seqlen),
                              ("--head-dim", headDim), ("--repeats", repeats), ("--threads", threads)] {
            if let value, value < 1 { throw ValidationError("\(name) must be at least 1, not \(value)") }
        }
        if decode && backend != .cuda { throw ValidationError("--decode needs --backend cuda") }
        if !(1...256).contains(pageSize) { throw ValidationError("--page-size must be between 1 and 256, not \(pageSize)") }
        if warmup < 0 { throw ValidationError("--warmup must not be negative, not \(warmup)") }
        if device < 0 { throw ValidationError("--device must not be negative, not \(device)") }
    }

    func run() throws {
        switch backend {
        case .cpu:
            let records = try reportingErrors { try runCPU() }
            if json {
                try printJSON(records)
            } else {
                print(Self.table(records))
                print(Self.cpuNote(records, repeats: repeats ?? 5))
            }
        case .cuda:
            var records = try self.records.map(Self.load) ?? reportingErrors { try decode ? runDecode() : runCUDA() }
            if let peers { records += try Self.load(peers) }
            let report = GPUBenchReport(records: records)
            if let svg {
                do { try report.svg.write(toFile: svg, atomically: true, encoding: .utf8) } catch {
                    throw ValidationFailure(message: "\(svg): cannot write: \(error.localizedDescription)")
                }
            }
            if json { try printJSON(records) } else { print(report.table) }
        }
    }

    private static func load(_ path: String) throws -> [BenchRecord] {
        do {
            return try JSONDecoder().decode([BenchRecord].self, from: Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            throw ValidationFailure(message: "\(path): cannot read benchmark records: \(error)")
        }
    }

    private var shapeGiven: Bool { batch != nil || heads != nil || seqlen != nil || headDim != nil || causal }

    private func runCUDA() throws -> [BenchRecord] {
        let engine = try openDevice(device)
        let configs = shapeGiven
            ? [GPUBenchConfig(batch: batch ?? 1, heads: heads ?? 16, seqlen: seqlen ?? 8192, headDim: headDim ?? 128, causal: causal)]
            : GPUBenchConfig.suites(quick: quick)
        for config in configs {
            // The host draws each input set as fp16 bits before uploading it. A valid problem's
            // tensors hold at most 2^56 elements each: no overflow here.
            let problem = try config.problem()
            let bytes = 2 * (problem.queryElementCount + 2 * problem.keyElementCount)
            try HostMemory.reserve(bytes, for: "the benchmark's fp16 inputs (\(problem))")
        }
        let benchmark = GPUBenchmark(engine: engine, repeats: repeats ?? 30, warmup: warmup)
        let progress = ProgressLine()
        var records: [BenchRecord] = []
        for config in configs {
            records += try benchmark.run(config, kernels: kernels.values, progress: progress)
        }
        progress.finish()
        return records
    }

    private func runDecode() throws -> [BenchRecord] {
        let engine = try openDevice(device)
        let configs = batch != nil || seqlen != nil || heads != nil || kvHeads != nil || headDim != nil
            ? [DecodeBenchConfig(batch: batch ?? 1, keyLength: seqlen ?? 8192, heads: heads ?? 32, kvHeads: kvHeads ?? 8,
                                 headDim: headDim ?? 128, pageSize: pageSize)]
            : DecodeBenchConfig.suite(quick: quick).map { config in
                var config = config
                config.pageSize = pageSize
                return config
            }
        let benchmark = DecodeBenchmark(engine: engine, repeats: repeats ?? 30, warmup: warmup, flush: flush)
        let progress = ProgressLine()
        progress.update("bench decode: copy bandwidth")
        let copy = try benchmark.copyBandwidth()
        var records: [BenchRecord] = []
        for config in configs { records += try benchmark.run(config, copyBandwidth: copy, progress: progress) }
        progress.finish()
        return records
    }

    private func runCPU() throws(AttentionError) -> [BenchRecord] {
        _ = try CPUKernelISA.fromEnvironment()
        let problem = try AttentionProblem(
            batch: batch ?? 1, heads: heads ?? 8, kvHeads: kvHeads, queryLength: seqlen ?? 4096, keyLength: seqlen ?? 4096,
            headDim: headDim ?? 128, causal: causal)
        let repeats = self.repeats ?? 5
        // The inputs themselves are one fp32 copy; every method's buffers come on top.
        for m in method.values { try CPUAttention.reserveHostMemory(m, problem: problem, threads: threads, inputCopies: 1) }
        var generator = SplitMix64(seed: UInt64(DispatchTime.now().uptimeNanoseconds))
        let (q, k, v) = InputDistribution.normal.makeInputs(for: problem, using: &generator)
        let progress = ProgressLine()
        var records: [BenchRecord] = []
        for m in method.values {
            var times: [Double] = []
            // One untimed warm-up run, then the timed repeats.
            for run in 0...repeats {
                let step = run == 0 ? "untimed warm-up" : "timed run \(run)/\(repeats)"
                progress.update("bench cpu \(m.rawValue) \(problem): \(step)")
                let ms = try milliseconds { () throws(AttentionError) in
                    _ = try CPUAttention.run(m, problem: problem, q: q, k: k, v: v, threads: threads)
                }
                if run > 0 { times.append(ms) }
            }
            records.append(BenchRecord(backend: "cpu", kernel: m.rawValue, problem: problem, ms: median(times)))
        }
        progress.finish()
        return records
    }

    /// What the CPU table's columns are: the median's runs and the speedup's baseline.
    static func cpuNote(_ records: [BenchRecord], repeats: Int) -> String {
        let baseline = records.first.map { "\($0.kernel)'s time (the first --method, the baseline)" } ?? "the baseline's time"
        return "ms: median of \(repeats) timed runs per method, after one untimed warm-up run; "
            + "speedup: \(baseline) divided by each method's time"
    }

    static func table(_ records: [BenchRecord]) -> String {
        let baseline = records.first?.ms
        let speedup = records.first.map { "speedup vs \($0.kernel)" } ?? "speedup"
        var table = TextTable(["backend", "kernel", "shape", "ms", "GOP/s", speedup])
        for r in records {
            let rate = r.gops.map { formatted($0) } ?? r.tops.map { formatted($0 * 1e3) } ?? "-"
            let shape = "B=\(r.batch) H=\(r.heads) N=\(r.seqlenK) D=\(r.headDim)\(r.causal ? " causal" : "")"
            let speedup = baseline.map { String(format: "%.2fx", $0 / r.ms) } ?? "-"
            table.append([r.backend, r.kernel, shape, String(format: "%.1f", r.ms), rate, speedup])
        }
        return table.rendered
    }
}

extension GPUBenchKernel: ExpressibleByArgument {}
