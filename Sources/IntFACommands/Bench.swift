import ArgumentParser
import Foundation
import IntFlashAttention

/// `intfa bench`: speed of the attention kernels, side by side in one run.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Time attention kernels side by side (median of repeated runs).",
        discussion: """
            CPU backend: the int8 path (quantization included) against the project's fp32 \
            FlashAttention on the same inputs, both using every thread.
            CUDA backend: int8 (on pre-quantized inputs), int8+quant (fp16 in, quantization \
            included), int8-paper, fp8-e4m3 (pre-quantized) and fp16, timed with CUDA events \
            after warm-up, median of --repeats runs, inputs rotated over enough copies to \
            defeat the L2 cache. Without shape options it runs the paper's configurations \
            (B=4, H=32, D=64) and the 16k-token sweep (B·N = 16384, H·D = 2048). --peers adds \
            records from bench/sdpa_baseline.py to the table and the chart.
            Operations are counted as 4·B·H·Nq·Nk·D, half when causal.
            """
    )

    enum Backend: String, ExpressibleByArgument, CaseIterable {
        case cpu, cuda
    }

    @Option(help: "Backend to time: \(Backend.allCases.map(\.rawValue).joined(separator: ", ")).")
    var backend: Backend = .cpu

    @Option(help: "Batch size (CPU default 1).")
    var batch: Int?

    @Option(help: "Query heads (CPU default 8).")
    var heads: Int?

    @Option(name: .customLong("kv-heads"), help: "Key/value heads (default: heads).")
    var kvHeads: Int?

    @Option(help: "Sequence length, Nq = Nk (CPU default 4096).")
    var seqlen: Int?

    @Option(name: .customLong("head-dim"), help: "Head dimension (CPU default 128).")
    var headDim: Int?

    @Flag(help: "Causal masking.")
    var causal = false

    @Option(help: "CPU methods to time; the first is the baseline of the speedup column.")
    var method = CommaSeparated<AttentionMethod>([.fp32, .int8])

    @Option(help: "Timed runs per kernel, the median is reported (default: 5 on the CPU, 30 on the GPU).")
    var repeats: Int?

    @Option(help: "Untimed warm-up runs per GPU kernel.")
    var warmup = 5

    @Option(help: "CUDA device ordinal.")
    var device = 0

    @Flag(help: "GPU suites at N = 1k, 4k and 16k only.")
    var quick = false

    @Option(help: "JSON records of peer kernels (bench/sdpa_baseline.py) to show beside ours.")
    var peers: String?

    @Option(help: "Write a chart of TOPS against N to this SVG file.")
    var svg: String?

    @Option(help: "Render saved GPU records (from --json) instead of measuring.")
    var records: String?

    @Option(help: "GPU kernels to time (default: all): \(GPUBenchKernel.allCases.map(\.rawValue).joined(separator: ", ")).")
    var kernels = CommaSeparated(GPUBenchKernel.allCases)

    @Option(help: "CPU threads (default: all).")
    var threads: Int?

    @Flag(help: "Print JSON records instead of a table.")
    var json = false

    func validate() throws {
        if let repeats, repeats < 1 { throw ValidationError("--repeats must be at least 1") }
        if warmup < 0 { throw ValidationError("--warmup must not be negative") }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
    }

    func run() throws {
        switch backend {
        case .cpu:
            let records = try reportingErrors { try runCPU() }
            if json { try printJSON(records) } else { print(Self.table(records)) }
        case .cuda:
            var records = try self.records.map(Self.load) ?? reportingErrors { try runCUDA() }
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

    private func runCUDA() throws(AttentionError) -> [BenchRecord] {
        let engine = try CUDAAttention(device: device)
        let benchmark = GPUBenchmark(engine: engine, repeats: repeats ?? 30, warmup: warmup)
        let configs = shapeGiven
            ? [GPUBenchConfig(batch: batch ?? 1, heads: heads ?? 16, seqlen: seqlen ?? 8192, headDim: headDim ?? 128, causal: causal)]
            : GPUBenchConfig.suites(quick: quick)
        let progress = ProgressLine()
        var records: [BenchRecord] = []
        for config in configs {
            records += try benchmark.run(config, kernels: kernels.values, progress: progress)
        }
        progress.finish()
        return records
    }

    private func runCPU() throws(AttentionError) -> [BenchRecord] {
        let problem = try AttentionProblem(
            batch: batch ?? 1, heads: heads ?? 8, kvHeads: kvHeads, queryLength: seqlen ?? 4096, keyLength: seqlen ?? 4096,
            headDim: headDim ?? 128, causal: causal)
        let repeats = self.repeats ?? 5
        var generator = SplitMix64(seed: UInt64(DispatchTime.now().uptimeNanoseconds))
        let (q, k, v) = InputDistribution.normal.makeInputs(for: problem, using: &generator)
        let progress = ProgressLine()
        var records: [BenchRecord] = []
        for m in method.values {
            var times: [Double] = []
            // One untimed warm-up run, then the timed repeats.
            for run in 0...repeats {
                progress.update("bench cpu \(m.rawValue) \(problem): run \(run)/\(repeats)")
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

    static func table(_ records: [BenchRecord]) -> String {
        let baseline = records.first?.ms
        var table = TextTable(["backend", "kernel", "shape", "ms", "GOP/s", "speedup"])
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
