import ArgumentParser
import Dispatch
import Foundation
import IntFlashAttention

/// `intfa check`: every GPU kernel variant against the CPU path of its own scheme.
struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run every GPU kernel variant on fresh random inputs against the CPU path of its scheme.",
        discussion: """
            For each method, head dim, masking and output type, over shapes including odd and \
            unequal lengths, GQA, both layouts and bf16 inputs: the output (poisoned with NaN \
            before each launch) must match the CPU implementation of the same scheme to \
            relative L1 ≤ 2e-3, its error against float64 must be within 1.2× the CPU's, and \
            the log-sum-exp must agree (mean difference ≤ 1e-4, largest ≤ 4e-3: the GPU's \
            exp2 may round one P code the other way). The INT8 quantization kernels must match the CPU \
            quantizers bit for bit. The GPU append to the paged INT8 KV cache (with int8) must store the CPU \
            oracle's bits, and decode on it must match the oracle's decode (relative L1 ≤ 2e-3, \
            log-sum-exp within 4e-3). Packed variable-length batches (int8, fp16) must match the CPU's \
            packed attention on the same tokens (relative L1 ≤ 2e-3). Exits with status 1 on any failure.
            With --fuzz N, each kernel variant (method, family, head dim, mask) runs the first N \
            cases of its own random sequence instead: shapes with B, H, Hkv, Nq, Nk at their \
            edges (0, 1, odd, unequal, around the 64- and 128-key blocks), both layouts, fp16 and bf16 \
            inputs and outputs, inputs as strided views with NaN between rows, and now and then \
            a planted NaN/Inf whose rows must come back NaN (the non-finite contract). Each case \
            must match the CPU scheme (relative L1 ≤ 1e-2, error against float64 ≤ 1.5× the \
            CPU's + 1e-3, log-sum-exp within 1e-2, rows that see no key exactly 0, no other \
            NaN) and, for the int8 schemes, its quantizers bit for bit. A case depends only on \
            the seed, the variant and its index: --fuzz 100 --seed S runs the first 100 cases \
            of --fuzz 1000 --seed S (a subset small enough for compute-sanitizer).
            """
    )

    @Flag(help: "A sub-minute subset: one shape per variant.")
    var quick = false

    @Option(parsing: .unconditional, help: "Random cases per kernel variant instead of the fixed shapes.")
    var fuzz: Int?

    @Option(parsing: .unconditional, help: "With --fuzz N: the first case to run (default 0), so that one run can be split over processes: --fuzz 1000 --fuzz-from 500 runs cases 500 to 999.")
    var fuzzFrom = 0

    @Flag(help: "Only the paged KV cache cases (GPU append and decode against the CPU oracle), e.g. under compute-sanitizer.")
    var decodeOnly = false

    @Option(help: "Methods to check (default: every method with a kernel on the device).")
    var method: CommaSeparated<AttentionMethod>?

    @Option(parsing: .unconditional, help: "CUDA device ordinal.")
    var device = 0

    @Option(help: "Seed of the input generator (default: from the clock, so every run draws fresh inputs).")
    var seed: UInt64?

    func validate() throws {
        if let fuzz, fuzz < 1 { throw ValidationError("--fuzz must be at least 1, not \(fuzz)") }
        if fuzz != nil && quick { throw ValidationError("--fuzz and --quick do not combine") }
        if fuzz != nil && decodeOnly { throw ValidationError("--fuzz and --decode-only do not combine") }
        if fuzzFrom != 0 {
            guard let fuzz else { throw ValidationError("--fuzz-from needs --fuzz") }
            guard fuzzFrom > 0, fuzzFrom < fuzz else { throw ValidationError("--fuzz-from must be in 0..<\(fuzz), not \(fuzzFrom)") }
        }
        if device < 0 { throw ValidationError("--device must not be negative, not \(device)") }
    }

    func run() throws {
        let seed = self.seed ?? UInt64(DispatchTime.now().uptimeNanoseconds)
        let engine = try openDevice(device)
        let methods = engine.methods.filter { method?.values.contains($0) ?? true }
        if let requested = method?.values, let missing = requested.first(where: { !engine.methods.contains($0) }) {
            throw ValidationFailure(message: "method \(missing) has no kernel on device \(device) (\(engine.architecture))")
        }
        if let fuzz {
            let cases = fuzzFrom == 0 ? "\(fuzz) cases" : "cases \(fuzzFrom) to \(fuzz - 1)"
            let rerun = fuzzFrom == 0 ? "" : " --fuzz-from \(fuzzFrom)"
            print("device \(device): \(engine.context.properties.name) (\(engine.architecture)), "
                + "\(cases) per variant, seed \(seed) (rerun: intfa check --fuzz \(fuzz)\(rerun) --seed \(seed))")
            let variants = FuzzVariant.all(methods: methods, arch: engine.featureArchitecture)
            let failures = FuzzRun(engine: engine, variants: variants, indices: fuzzFrom..<fuzz, seed: seed).run()
            let count = fuzz - fuzzFrom
            print("\(variants.count * count - failures) passed, \(failures) failed (\(variants.count) variants × \(count) cases)")
            if failures > 0 { throw ExitCode.failure }
            return
        }
        print("device \(device): \(engine.context.properties.name) (\(engine.architecture)), seed \(seed)")
        var generator = SplitMix64(seed: seed)
        var table = TextTable(["result", "method", "D", "mask", "out", "shape", "vs CPU", "err GPU", "err CPU", "lse", "quant"])
        var failures = 0
        let progress = ProgressLine()
        // The wgmma kernels' fragment layouts, exactly, before any attention case uses them.
        var layoutTests = 0
        if HopperKernelDescriptor.supports(arch: engine.featureArchitecture) && !decodeOnly {
            for headDim in HopperKernelDescriptor.headDims {
                progress.update("check wgmma fragment layout, D = \(headDim)")
                let mismatch: String?
                do throws(AttentionError) {
                    mismatch = try engine.wgmmaLayoutMismatch(headDim: headDim, seed: generator.next())
                } catch {
                    mismatch = error.description
                }
                layoutTests += 1
                if mismatch != nil { failures += 1 }
                table.append([mismatch == nil ? "ok" : "FAIL", "wgmma layout", "\(headDim)", "-", "-", "S=Q·Kᵀ, O=P·V 64x64", "exact"])
                if let mismatch { table.append(["", mismatch]) }
            }
        }
        // One row of the table per case; a case that throws fails with the error's text.
        func record(_ columns: (CheckOutcome) -> [String], _ evaluate: () throws(AttentionError) -> CheckOutcome) {
            let outcome: CheckOutcome
            do throws(AttentionError) {
                outcome = try evaluate()
            } catch {
                outcome = CheckOutcome(failure: error.description)
            }
            if !outcome.passed { failures += 1 }
            table.append([outcome.passed ? "ok" : "FAIL"] + columns(outcome))
            if let failure = outcome.failure { table.append(["", failure]) }
        }
        let cases = decodeOnly ? [] : CheckCase.all(quick: quick, methods: methods, arch: engine.featureArchitecture)
        for (index, c) in cases.enumerated() {
            progress.update("check \(index + 1)/\(cases.count): \(c.method.rawValue) \(c.shapeDescription)")
            record({ outcome in
                [c.methodDescription, "\(c.headDim)", c.causal ? "causal" : "full", c.output.rawValue, c.shapeDescription,
                 formatted(outcome.vsCPU), formatted(outcome.gpuError), formatted(outcome.cpuError),
                 formatted(outcome.lseError), outcome.quantization]
            }) { () throws(AttentionError) in try c.evaluate(on: engine, generator: &generator) }
        }
        // Appends to the paged INT8 cache and decode on it, against the CPU oracle.
        let decodeCases = method.map { $0.values.contains(.int8) } ?? true ? DecodeCheckCase.all(quick: quick) : []
        for (index, c) in decodeCases.enumerated() {
            progress.update("check decode \(index + 1)/\(decodeCases.count): \(c.description)")
            record({ outcome in
                ["int8 decode", "\(c.headDim)", c.causal ? "causal" : "full", c.output.rawValue, c.description,
                 formatted(outcome.vsCPU), "-", "-", formatted(outcome.lseError), "-"]
            }) { () throws(AttentionError) in try c.evaluate(on: engine, generator: &generator) }
        }
        // Packed variable-length batches against the CPU's packed attention.
        let packedCases = decodeOnly ? [] : VariableLengthCheckCase.all(methods: methods)
        for (index, c) in packedCases.enumerated() {
            progress.update("check varlen \(index + 1)/\(packedCases.count): \(c.method.rawValue) \(c.description)")
            record({ outcome in
                ["\(c.method.rawValue) varlen", "\(c.headDim)", c.causal ? "causal" : "full", "float16", c.description,
                 formatted(outcome.vsCPU), "-", "-", "-", "-"]
            }) { () throws(AttentionError) in try c.evaluate(on: engine, generator: &generator) }
        }
        progress.finish()
        print(table.rendered)
        print("\(layoutTests + cases.count + decodeCases.count + packedCases.count - failures) passed, \(failures) failed")
        if failures > 0 { throw ExitCode.failure }
    }
}

/// One kernel variant on one shape.
struct CheckCase {
    var method: AttentionMethod
    /// The family forced for this case (a method is checked with every family that runs it).
    var family: AttentionKernelFamily = .mma
    var headDim: Int
    var causal: Bool
    var output: ElementType
    var input: ElementType
    var layout: TensorLayout
    var batch: Int, heads: Int, kvHeads: Int, queryLength: Int, keyLength: Int

    var methodDescription: String { method.description(running: family) }

    var shapeDescription: String {
        var text = "B\(batch) H\(heads)"
        if kvHeads != heads { text += "/\(kvHeads)" }
        return text + " \(queryLength)x\(keyLength) \(layout.rawValue) \(input.rawValue)"
    }

    /// (B, H, Hkv, Nq, Nk, layout, input): odd lengths, Nq ≠ Nk both ways, GQA, MQA, BNHD, bf16.
    static let shapes: [(Int, Int, Int, Int, Int, TensorLayout, ElementType)] = [
        (1, 1, 1, 1, 1, .bhnd, .float16),
        (1, 2, 2, 63, 65, .bnhd, .float16),
        (1, 4, 2, 127, 127, .bhnd, .bfloat16),
        (2, 2, 2, 65, 200, .bhnd, .float16),
        (1, 2, 2, 200, 65, .bnhd, .float16),
        (1, 4, 1, 1000, 1000, .bhnd, .float16),
        (1, 2, 2, 1000, 333, .bnhd, .bfloat16),
        (1, 1, 1, 2048, 2048, .bhnd, .float16),
    ]

    /// The cases of every family of ``AttentionFamilies`` that runs one of `methods` on `arch`.
    static func all(quick: Bool, methods: [AttentionMethod], arch: String) -> [CheckCase] {
        var cases: [CheckCase] = []
        var rotation = 0
        let variants = methods.flatMap { method in
            AttentionFamilies.coverage(of: method, arch: arch).map { (method: method, family: $0.family.name, headDims: $0.headDims) }
        }
        for (method, family, headDims) in variants {
            for headDim in headDims {
                for causal in [false, true] {
                    for output in [ElementType.float16, .bfloat16] {
                        let picked = quick ? [shapes[rotation % (shapes.count - 1)]] : shapes
                        rotation += 1
                        for (b, h, hkv, nq, nk, layout, input) in picked {
                            cases.append(CheckCase(
                                method: method, family: family, headDim: headDim, causal: causal, output: output,
                                input: input, layout: layout, batch: b, heads: h, kvHeads: hkv,
                                queryLength: nq, keyLength: nk))
                        }
                        if quick { break }  // one output type per (method, D, mask) in quick mode
                    }
                }
            }
        }
        if !quick {
            let int8Families = methods.contains(.int8) ? AttentionFamilies.coverage(of: .int8, arch: arch) : []
            for family in int8Families.filter({ $0.headDims.contains(64) && $0.headDims.contains(128) }).map(\.family.name) {
                // More (batch, head) pairs than a grid's y or z extent holds (65535): every
                // kernel must loop over them, not fail at launch.
                cases.append(CheckCase(
                    method: .int8, family: family, headDim: 64, causal: false, output: .float16, input: .float16,
                    layout: .bhnd, batch: 2, heads: 32_800, kvHeads: 32_800, queryLength: 3, keyLength: 70))
                // Long rows (192 key blocks): rounding that grows with the number of blocks
                // stays hidden at the shapes above. Few queries keep the CPU oracles quick; with
                // the bottom-right mask the causal rows still see 12033 keys or more.
                for causal in [false, true] {
                    cases.append(CheckCase(
                        method: .int8, family: family, headDim: 128, causal: causal, output: .float16, input: .float16,
                        layout: .bhnd, batch: 1, heads: 2, kvHeads: 2, queryLength: 256, keyLength: 12_288))
                }
            }
        }
        return cases
    }

    func evaluate(on engine: CUDAAttention, generator: inout SplitMix64) throws(AttentionError) -> CheckOutcome {
        let problem = try AttentionProblem(
            batch: batch, heads: heads, kvHeads: kvHeads, queryLength: queryLength, keyLength: keyLength,
            headDim: headDim, causal: causal)
        let (q, k, v) = InputDistribution.normal.makeInputs(for: problem, using: &generator)
        func tensor(_ values: [Float], heads: Int, tokens: Int) throws(AttentionError) -> AttentionTensor {
            let ordered = TensorLayout.bhnd.reorder(values, to: layout, batch: batch, heads: heads, tokens: tokens, headDim: headDim)
            return try AttentionTensor(
                converting: ordered, to: input, batch: batch, heads: heads, tokens: tokens, headDim: headDim, layout: layout)
        }
        let qt = try tensor(q, heads: heads, tokens: queryLength)
        let kt = try tensor(k, heads: kvHeads, tokens: keyLength)
        let vt = try tensor(v, heads: kvHeads, tokens: keyLength)
        // Both paths see exactly the rounded inputs.
        let (qr, kr, vr) = (qt.floatsBHND(), kt.floatsBHND(), vt.floatsBHND())

        engine.kernelFamily = family
        let gpu = try engine.run(method, problem: problem, q: qt, k: kt, v: vt, outputType: output, computeLogSumExp: true)
        let cpu = try CPUAttention.run(method, problem: problem, q: qr, k: kr, v: vr)
        let reference = try CPUAttention.reference(problem, q: qr, k: kr, v: vr)
        // The CPU output rounded as the GPU's is: output rounding is part of the scheme.
        let cpuRounded = try AttentionTensor(
            converting: cpu.output, to: output, batch: batch, heads: heads, tokens: queryLength, headDim: headDim
        ).floats()
        let gpuOut = gpu.output.floatsBHND()
        var outcome = CheckOutcome()
        outcome.vsCPU = ErrorMetrics(output: gpuOut, reference: cpuRounded.map(Double.init)).relativeL1
        outcome.gpuError = ErrorMetrics(output: gpuOut, reference: reference).relativeL1
        outcome.cpuError = ErrorMetrics(output: cpuRounded, reference: reference).relativeL1
        // Both are −∞ for rows that see no key.
        let lseDifferences = zip(gpu.logSumExp, cpu.logSumExp).map { $0 == $1 ? 0 : Double(abs($0 - $1)) }
        outcome.lseError = lseDifferences.max() ?? 0
        outcome.lseMeanError = lseDifferences.reduce(0, +) / Double(max(lseDifferences.count, 1))
        if method == .int8 || method == .int8Paper {
            let onDevice = try engine.quantizeOnDevice(method, problem: problem, q: qt, k: kt, v: vt)
            let onHost = try QuantizedAttentionInputs.quantize(method: method, problem: problem, q: qr, k: kr, v: vr)
            outcome.quantization = onDevice.bitwiseEqual(onHost) ?? "bit-exact"
        }
        outcome.judge()
        return outcome
    }
}

/// What one case measured, and whether it passed.
struct CheckOutcome {
    var vsCPU = Double.nan, gpuError = Double.nan, cpuError = Double.nan
    /// Largest and mean |Δ log-sum-exp| over rows.
    var lseError = Double.nan, lseMeanError = Double.nan
    var quantization = "-"
    var failure: String?

    init() {}

    init(failure: String) { self.failure = failure }

    var passed: Bool { failure == nil }

    mutating func judge() {
        var problems: [String] = []
        if !(vsCPU <= 2e-3) { problems.append("GPU vs CPU rel L1 \(formatted(vsCPU)) > 2e-3") }
        // A small absolute allowance keeps near-exact methods (fp16: ~1e-4) from failing on
        // ratios of rounding noise.
        if !(gpuError <= 1.2 * cpuError + 1e-5) {
            problems.append("error vs float64 \(formatted(gpuError)) > 1.2 × CPU's \(formatted(cpuError))")
        }
        // The 8-bit schemes' l is a sum of rounded P codes, and the GPU's exp2 differs from the
        // CPU's in the last bit: a code at a rounding tie may land one unit away, which moves
        // ln l by up to ln(1 + 1/255) ≈ 3.9e-3 in a row whose codes sum to 255. Over the
        // ~200k short rows of the many-heads case such flips reach 1e-3; a systematic error
        // shows in the mean.
        if !(lseError <= 4e-3) { problems.append("log-sum-exp differs by \(formatted(lseError))") }
        if !(lseMeanError <= 1e-4) { problems.append("log-sum-exp differs by \(formatted(lseMeanError)) on average") }
        if quantization != "-" && quantization != "bit-exact" { problems.append("quantizers differ: \(quantization)") }
        failure = problems.isEmpty ? nil : problems.joined(separator: "; ")
    }
}

extension QuantizedAttentionInputs {
    /// nil when every code and scale is bit-identical to `other`'s, else what differs first.
    func bitwiseEqual(_ other: QuantizedAttentionInputs) -> String? {
        func same(_ a: [Float], _ b: [Float]) -> Bool { a.map(\.bitPattern) == b.map(\.bitPattern) }
        if queryCodes != other.queryCodes { return "Q codes" }
        if !same(queryScales, other.queryScales) { return "Q scales" }
        if keyCodes != other.keyCodes { return "K codes" }
        if !same(keyScales, other.keyScales) { return "K scales" }
        if valueCodesTransposed != other.valueCodesTransposed { return "V codes" }
        if !same(valueScales, other.valueScales) { return "V scales" }
        return nil
    }
}

extension AttentionMethod {
    /// The method's name in check reports, with the family when it is not the general `mma`
    /// one ("int8 wgmma"): the fuzz cases' seeds derive from these names.
    func description(running family: AttentionKernelFamily) -> String {
        family == .mma ? rawValue : "\(rawValue) \(family.rawValue)"
    }
}
