import Foundation
import IntFlashAttention

/// `intfa check --fuzz N`: N random shapes per GPU kernel variant against the CPU path of its
/// scheme. Every case is a pure function of (seed, variant, index), so `--fuzz 100` runs exactly
/// the first 100 cases of `--fuzz 1000` with the same seed (the subset for compute-sanitizer),
/// and a failure reruns with the seed printed.
struct FuzzRun {
    var engine: CUDAAttention
    var variants: [FuzzVariant]
    /// The cases to run, by index in each variant's sequence.
    var indices: Range<Int>
    var seed: UInt64

    /// Runs every variant's cases, prints one line per failed case and a summary line per
    /// variant; returns the number of failed cases.
    func run() -> Int {
        let progress = ProgressLine()
        var failures = 0
        var table = TextTable(["result", "variant", "cases", "non-finite", "worst vs CPU", "worst err/CPU err", "worst lse"])
        for variant in variants {
            var summary = FuzzSummary()
            for index in indices {
                if index % 50 == 0 { progress.update("fuzz \(variant.name): case \(index + 1)/\(indices.upperBound)") }
                let c = FuzzCase(variant: variant, index: index, seed: seed)
                let outcome: FuzzOutcome
                do throws(AttentionError) {
                    outcome = try c.evaluate(on: engine)
                } catch {
                    outcome = FuzzOutcome(failure: error.description)
                }
                summary.add(outcome, planted: c.planted != nil)
                if let failure = outcome.failure {
                    progress.finish()
                    print("FAIL \(variant.name) case \(index) (\(c.shapeDescription)): \(failure)")
                }
            }
            failures += summary.failed
            table.append([
                summary.failed == 0 ? "ok" : "FAIL", variant.name, "\(indices.count - summary.failed)/\(indices.count) passed",
                "\(summary.planted)", formatted(summary.worstVsCPU), formatted(summary.worstErrorRatio),
                formatted(summary.worstLogSumExp),
            ])
        }
        progress.finish()
        print(table.rendered)
        return failures
    }
}

/// One GPU kernel variant: the method, the family that runs it, the head dim and the mask.
/// The output type, input type and layout vary from case to case.
struct FuzzVariant {
    var method: AttentionMethod
    var family: AttentionKernelFamily
    var headDim: Int
    var causal: Bool

    var name: String {
        "\(method.description(running: family)) D=\(headDim) \(causal ? "causal" : "full")"
    }

    /// FNV-1a of the name: stable across processes and builds (Swift's `hashValue` is not), so
    /// a variant's cases do not depend on which other variants run.
    var key: UInt64 {
        name.utf8.reduce(0xCBF2_9CE4_8422_2325 as UInt64) { ($0 ^ UInt64($1)) &* 0x100_0000_01B3 }
    }

    /// Every (method, family, head dim, mask) of `methods` that a family of
    /// ``AttentionFamilies`` runs on `arch`.
    static func all(methods: [AttentionMethod], arch: String) -> [FuzzVariant] {
        var variants: [FuzzVariant] = []
        for method in methods {
            for (family, headDims) in AttentionFamilies.coverage(of: method, arch: arch) {
                for headDim in headDims {
                    for causal in [false, true] {
                        variants.append(FuzzVariant(method: method, family: family.name, headDim: headDim, causal: causal))
                    }
                }
            }
        }
        return variants
    }
}

/// One random case of a variant. Shapes favour the edges: Nq = 0, lengths around multiples of
/// the 64- and 128-key blocks and of 16-row tiles, Nq ≠ Nk both ways, GQA and MQA, B = 0 now and then;
/// B·H·Nq·Nk stays under 2¹⁸ so the CPU oracles keep up. Inputs are uploaded as strided views
/// with NaN between rows now and then, and one case in sixteen plants a NaN, ±Inf (or, for
/// `fp16` on bf16 inputs, a value beyond fp16's range) to check the non-finite contract.
struct FuzzCase {
    var variant: FuzzVariant
    var index: Int
    var batch: Int, heads: Int, kvHeads: Int, queryLength: Int, keyLength: Int
    var layout: TensorLayout
    var input: ElementType
    var output: ElementType
    var rowPadding: Int
    /// Where a planted offending value goes: tensor (0 = Q, 1 = K, 2 = V), element in BHND order.
    var planted: (tensor: Int, element: Int, value: Float)?
    /// Seeds the case's input values.
    var valueSeed: UInt64

    static let specialLengths = [1, 2, 15, 16, 17, 31, 63, 64, 65, 127, 128, 129, 191, 192, 193, 255, 256, 257]
    static let maxScores = 1 << 18

    init(variant: FuzzVariant, index: Int, seed: UInt64) {
        self.variant = variant
        self.index = index
        var g = SplitMix64(seed: seed ^ (variant.key &* 0x9E37_79B9_7F4A_7C15) ^ (UInt64(index) &* 0xD1B5_4A32_D192_ED03))
        func pick<T>(_ values: [T]) -> T { values[Int(g.next() % UInt64(values.count))] }
        func length(upTo limit: Int) -> Int {
            g.next() % 4 == 0 ? pick(Self.specialLengths) : 1 + Int(g.next() % UInt64(limit))
        }
        let batch = g.next() % 50 == 0 ? 0 : pick([1, 1, 1, 2, 2, 3])
        let heads = pick([1, 1, 2, 3, 4, 6, 8])
        let kvHeads = pick((1...heads).filter { heads % $0 == 0 })
        var queryLength = g.next() % 25 == 0 ? 0 : length(upTo: 300)
        var keyLength = length(upTo: 700)
        // Keep the float64 oracle quick: halve the longer sequence until the scores fit.
        while max(batch, 1) * heads * queryLength * keyLength > Self.maxScores {
            if queryLength > keyLength { queryLength = (queryLength + 1) / 2 } else { keyLength = (keyLength + 1) / 2 }
        }
        (self.batch, self.heads, self.kvHeads, self.queryLength, self.keyLength) = (batch, heads, kvHeads, queryLength, keyLength)
        layout = pick([.bhnd, .bnhd])
        input = pick([.float16, .bfloat16])
        output = pick([.float16, .bfloat16])
        rowPadding = pick([0, 0, 8, 24])
        valueSeed = g.next()
        planted = nil
        if g.next() % 16 == 0 {
            let rows = [batch * heads * queryLength, batch * kvHeads * keyLength, batch * kvHeads * keyLength]
            let tensor = rows[0] > 0 ? Int(g.next() % 3) : 1 + Int(g.next() % 2)
            if rows[tensor] > 0 {
                var values: [Float] = [.nan, .infinity, -.infinity]
                if variant.method == .fp16 && input == .bfloat16 { values.append(70_000) }
                let element = Int(g.next() % UInt64(rows[tensor] * variant.headDim))
                planted = (tensor, element, pick(values))
            }
        }
    }

    var shapeDescription: String {
        var text = "B\(batch) H\(heads)"
        if kvHeads != heads { text += "/\(kvHeads)" }
        text += " \(queryLength)x\(keyLength) \(layout.rawValue) \(input.rawValue)->\(output.rawValue)"
        if rowPadding > 0 { text += " pad \(rowPadding)" }
        if let planted { text += " \(planted.value) in \(["q", "k", "v"][planted.tensor])[\(planted.element)]" }
        return text
    }

    func evaluate(on engine: CUDAAttention) throws(AttentionError) -> FuzzOutcome {
        let d = variant.headDim
        let problem = try AttentionProblem(
            batch: batch, heads: heads, kvHeads: kvHeads, queryLength: queryLength, keyLength: keyLength,
            headDim: d, causal: variant.causal)
        var generator = SplitMix64(seed: valueSeed)
        var inputs = InputDistribution.normal.makeInputs(for: problem, using: &generator)
        if let planted {
            switch planted.tensor {
            case 0: inputs.q[planted.element] = planted.value
            case 1: inputs.k[planted.element] = planted.value
            default: inputs.v[planted.element] = planted.value
            }
        }
        func tensor(_ values: [Float], heads: Int, tokens: Int) throws(AttentionError) -> AttentionTensor {
            let ordered = TensorLayout.bhnd.reorder(values, to: layout, batch: batch, heads: heads, tokens: tokens, headDim: d)
            return try AttentionTensor(
                converting: ordered, to: input, batch: batch, heads: heads, tokens: tokens, headDim: d, layout: layout)
        }
        let qt = try tensor(inputs.q, heads: heads, tokens: queryLength)
        let kt = try tensor(inputs.k, heads: kvHeads, tokens: keyLength)
        let vt = try tensor(inputs.v, heads: kvHeads, tokens: keyLength)
        // Both paths see exactly the rounded inputs.
        let (qr, kr, vr) = (qt.floatsBHND(), kt.floatsBHND(), vt.floatsBHND())

        engine.kernelFamily = variant.family
        let gpu = try engine.run(
            variant.method, problem: problem, q: qt, k: kt, v: vt, outputType: output, computeLogSumExp: true,
            validateInputs: false, rowPadding: rowPadding)
        let cpu = try CPUAttention.run(variant.method, problem: problem, q: qr, k: kr, v: vr)
        let reference = try CPUAttention.reference(problem, q: qr, k: kr, v: vr)
        let cpuRounded = try AttentionTensor(
            converting: cpu.output, to: output, batch: batch, heads: heads, tokens: queryLength, headDim: d
        ).floats()
        var outcome = FuzzOutcome()
        outcome.compare(
            problem: problem, gpu: gpu.output.floatsBHND(), gpuLogSumExp: gpu.logSumExp, cpu: cpuRounded,
            cpuLogSumExp: cpu.logSumExp, reference: reference)
        if outcome.failure == nil, planted == nil, !problem.isEmpty,
           variant.method == .int8 || variant.method == .int8Paper {
            let onDevice = try engine.quantizeOnDevice(variant.method, problem: problem, q: qt, k: kt, v: vt)
            let onHost = try QuantizedAttentionInputs.quantize(method: variant.method, problem: problem, q: qr, k: kr, v: vr)
            if let difference = onDevice.bitwiseEqual(onHost) { outcome.failure = "quantizers differ: \(difference)" }
        }
        return outcome
    }
}

/// What one fuzz case measured, and whether it passed.
struct FuzzOutcome {
    var vsCPU = 0.0, gpuError = 0.0, cpuError = 0.0, logSumExp = 0.0
    var failure: String?

    init() {}

    init(failure: String) { self.failure = failure }

    /// The case's checks, on BHND outputs rounded alike: the same rows NaN (the non-finite
    /// contract; nothing else may be NaN, so an element the kernel failed to write fails),
    /// rows that see no key exactly 0 with a log-sum-exp of −∞, and on the other rows relative
    /// L1 against the CPU scheme ≤ 1e-2, error against float64 ≤ 1.5 × the CPU's + 1e-3,
    /// log-sum-exp within 1e-2. The bounds are looser than the fixed table's (2e-3) because a
    /// case may be a single short row, where one P code rounded the other way by the GPU's
    /// exp2 moves the output by up to 2·max|V|/255; indexing faults move it by O(1).
    mutating func compare(
        problem p: AttentionProblem, gpu: [Float], gpuLogSumExp: [Float], cpu: [Float], cpuLogSumExp: [Float],
        reference: [Double]
    ) {
        let d = p.headDim, rows = p.batch * p.heads * p.queryLength
        guard gpu.count == rows * d, cpu.count == rows * d, gpuLogSumExp.count == rows else {
            failure = "the GPU returned \(gpu.count) outputs and \(gpuLogSumExp.count) log-sum-exps for \(rows) rows of \(d)"
            return
        }
        var kept = (gpu: [Float](), cpu: [Float](), reference: [Double]())
        for row in 0..<rows {
            let span = (row * d)..<((row + 1) * d)
            let gpuNaN = gpu[span].contains { $0.isNaN }, cpuNaN = cpu[span].contains { $0.isNaN }
            if gpuNaN != cpuNaN || gpuLogSumExp[row].isNaN != cpuNaN {
                failure = "row \(row): \(gpuNaN ? "NaN" : "finite") on the GPU, \(cpuNaN ? "NaN" : "finite") on the CPU"
                return
            }
            if cpuNaN { continue }
            if p.visibleKeys(row: row % p.queryLength) == 0 {
                guard gpu[span].allSatisfy({ $0 == 0 }), gpuLogSumExp[row] == -.infinity else {
                    failure = "row \(row) sees no key but is not 0 with a log-sum-exp of -inf"
                    return
                }
                continue
            }
            kept.gpu += gpu[span]
            kept.cpu += cpu[span]
            kept.reference += reference[span]
            let difference = abs(Double(gpuLogSumExp[row]) - Double(cpuLogSumExp[row]))
            logSumExp = max(logSumExp, difference.isNaN ? .infinity : difference)
        }
        guard !kept.gpu.isEmpty else { return }
        vsCPU = ErrorMetrics(output: kept.gpu, reference: kept.cpu.map(Double.init)).relativeL1
        gpuError = ErrorMetrics(output: kept.gpu, reference: kept.reference).relativeL1
        cpuError = ErrorMetrics(output: kept.cpu, reference: kept.reference).relativeL1
        var problems: [String] = []
        if !(vsCPU <= 1e-2) { problems.append("GPU vs CPU rel L1 \(formatted(vsCPU)) > 1e-2") }
        if !(gpuError <= 1.5 * cpuError + 1e-3) {
            problems.append("error vs float64 \(formatted(gpuError)) > 1.5 × CPU's \(formatted(cpuError)) + 1e-3")
        }
        if !(logSumExp <= 1e-2) { problems.append("log-sum-exp differs by \(formatted(logSumExp))") }
        failure = problems.isEmpty ? nil : problems.joined(separator: "; ")
    }
}

/// A variant's cases, summed up.
struct FuzzSummary {
    var failed = 0, planted = 0
    var worstVsCPU = 0.0, worstErrorRatio = 0.0, worstLogSumExp = 0.0

    mutating func add(_ outcome: FuzzOutcome, planted: Bool) {
        if outcome.failure != nil { failed += 1 }
        if planted { self.planted += 1 }
        worstVsCPU = max(worstVsCPU, outcome.vsCPU.isNaN ? .infinity : outcome.vsCPU)
        if outcome.cpuError > 0 { worstErrorRatio = max(worstErrorRatio, outcome.gpuError / outcome.cpuError) }
        worstLogSumExp = max(worstLogSumExp, outcome.logSumExp)
    }
}
