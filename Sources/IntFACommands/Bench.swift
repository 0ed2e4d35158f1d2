import ArgumentParser
import Foundation
import IntFlashAttention

/// `intfa bench`: speed of the attention kernels, side by side in one run.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Time attention kernels side by side (median of repeated runs).",
        discussion: """
            CPU backend: the int8 path (quantization included) against the project's fp32 \
            FlashAttention on the same inputs, both using every thread. Operations are counted \
            as 4·B·H·Nq·Nk·D, half when causal.
            """
    )

    enum Backend: String, ExpressibleByArgument, CaseIterable {
        case cpu, cuda
    }

    @Option(help: "Backend to time: \(Backend.allCases.map(\.rawValue).joined(separator: ", ")).")
    var backend: Backend = .cpu

    @Option(help: "Batch size.")
    var batch = 1

    @Option(help: "Query heads.")
    var heads = 8

    @Option(name: .customLong("kv-heads"), help: "Key/value heads (default: heads).")
    var kvHeads: Int?

    @Option(help: "Sequence length (Nq = Nk).")
    var seqlen = 4096

    @Option(name: .customLong("head-dim"), help: "Head dimension.")
    var headDim = 128

    @Flag(help: "Causal masking.")
    var causal = false

    @Option(help: "CPU methods to time; the first is the baseline of the speedup column.")
    var method = CommaSeparated<AttentionMethod>([.fp32, .int8])

    @Option(help: "Timed runs per kernel (the median is reported).")
    var repeats = 5

    @Option(help: "CPU threads (default: all).")
    var threads: Int?

    @Flag(help: "Print JSON records instead of a table.")
    var json = false

    func validate() throws {
        if repeats < 1 { throw ValidationError("--repeats must be at least 1") }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
    }

    func run() throws {
        let records = try reportingErrors { try runCPU() }
        if json {
            try printJSON(records)
        } else {
            print(Self.table(records))
        }
    }

    private func runCPU() throws(AttentionError) -> [BenchRecord] {
        let problem = try AttentionProblem(
            batch: batch, heads: heads, kvHeads: kvHeads, queryLength: seqlen, keyLength: seqlen,
            headDim: headDim, causal: causal)
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
