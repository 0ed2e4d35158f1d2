import Foundation
import Testing
@testable import IntFlashAttention

/// Random calls of every method on the CPU path, 1000 per method from a fixed seed, against
/// the float64 reference and, for one small call in eight, against the scheme's scalar
/// simulation (a failure names its case; `PropertyCase(method:index:seed:)` rebuilds it).
///
/// Each call must: make NaN exactly the rows the non-finite contract names
/// (``ContractOracle``), output and log-sum-exp; give 0 and −∞ in rows that see no key; and
/// elsewhere stay within the method's error of the float64 reference on the inputs with the
/// offending values zeroed. One call in eight, and every call with a planted value, also goes
/// through the tensor entry point (its layout and storage, validation off), which must agree
/// bit for bit; with validation on, a planted value is refused with the error and index of the
/// first one.
@Suite struct CPUPropertyTests {
    static let seed: UInt64 = 0x1F1A_2024
    static let casesPerMethod = 1000

    /// Largest |O − R| of a case's rows against float64, in units of max |V|: fp32 is exact
    /// to rounding, fp16 to its rounding of the inputs and P, and the 8-bit schemes show their
    /// quantization error whole when a row sees only a few keys (twice the worst of these
    /// 1000 cases). FP8 and INT4 have none: on such rows their error reaches max |V|, which
    /// any convex combination of V meets, so they are held to their simulation instead.
    static let referenceTolerance: [AttentionMethod: Double] = [
        .fp32: 2e-5, .fp16: 1.5e-2, .int8Paper: 0.3, .int8: 0.3,
    ]

    /// Largest |O − S| against the scheme's simulation, in units of max |V|: the two differ
    /// only in exp2 (the kernels' polynomial against Foundation's), which may round one P the
    /// other way; one step of P moves a row by at most 2·step·max|V| (l ≥ 1 in these units).
    static let simulationTolerance: [AttentionMethod: Double] = [
        .fp16: 2 * 0x1p-11, .fp8E4M3: 2 * 0x1p-4, .fp8E5M2: 2 * 0x1p-3, .int8Paper: 2.0 / 127, .int8: 2.0 / 255,
        .int4: 2.0 / 255,
    ]

    @Test(arguments: AttentionMethod.allCases)
    func randomCallsMatchTheReference(method: AttentionMethod) throws {
        var measured = 0
        for index in 0..<Self.casesPerMethod {
            let c = try PropertyCase(method: method, index: index, seed: Self.seed)
            if try Self.check(c) { measured += 1 }
        }
        // Most cases must have rows to compare, or the bounds above would prove little.
        #expect(measured > Self.casesPerMethod * 3 / 4, "\(method): only \(measured) cases had rows to compare")
    }

    /// Runs one case's checks; returns whether it had rows to compare.
    static func check(_ c: PropertyCase) throws -> Bool {
        let p = c.problem, d = p.headDim
        let (q, k, v) = c.inputs()
        let result = try CPUAttention.run(c.method, problem: p, q: q, k: k, v: v, threads: c.threads)
        let rows = p.batch * p.heads * p.queryLength
        #expect(result.output.count == rows * d && result.logSumExp.count == rows, "\(c)")

        let planted = [q, k, v].enumerated().lazy.compactMap { tensor, values in
            values.firstIndex { ContractOracle.offends($0, c.method) }.map { (tensor, $0) }
        }.first
        if c.index % 8 == 0 || planted != nil {
            let qt = try c.tensor(q, heads: p.heads, tokens: p.queryLength)
            let kt = try c.tensor(k, heads: p.kvHeads, tokens: p.keyLength)
            let vt = try c.tensor(v, heads: p.kvHeads, tokens: p.keyLength)
            // The tensor entry point is the array one plus layout and storage conversions.
            let viaTensors = try CPUAttention.run(c.method, problem: p, q: qt, k: kt, v: vt, threads: c.threads, validateInputs: false)
            let converted = try AttentionTensor(
                converting: result.output, to: c.storage, batch: p.batch, heads: p.heads, tokens: p.queryLength, headDim: d)
            #expect(viaTensors.layout == c.layout && viaTensors.elementType == c.storage, "\(c)")
            #expect(viaTensors.floatsBHND().map(\.bitPattern) == converted.floats().map(\.bitPattern), "\(c)")
            // Validation refuses the first planted value, in Q, K, V order.
            if let (tensor, index) = planted {
                let name = ["q", "k", "v"][tensor]
                let value = [q, k, v][tensor][index]
                let expected: AttentionError = value.isFinite
                    ? .inputOutOfRange(tensor: name, index: index, value: value, reason: InputScreen.fp16Reason(c.method))
                    : .nonFiniteInput(tensor: name, index: index)
                #expect(throws: expected, "\(c)") {
                    try CPUAttention.run(c.method, problem: p, q: qt, k: kt, v: vt, threads: c.threads)
                }
            }
        }

        let nanRows = planted == nil ? [Bool](repeating: false, count: rows) : ContractOracle.nanRows(p, c.method, q: q, k: k, v: v)
        let clean = planted == nil ? (q: q, k: k, v: v)
            : (q: ContractOracle.cleaned(q, c.method), k: ContractOracle.cleaned(k, c.method), v: ContractOracle.cleaned(v, c.method))
        let reference = try CPUAttention.reference(p, q: clean.q, k: clean.k, v: clean.v)
        // The simulation is slow in a debug build: one call in eight, the smaller ones.
        let simulate = c.method != .fp32 && !p.isEmpty && c.index % 8 == 1 && p.batch * p.heads * p.queryLength * p.keyLength <= 1 << 10
        let simulated = simulate ? SchemeSimulation.run(c.method, p, q: clean.q, k: clean.k, v: clean.v) : nil
        let unit = max(Double(clean.v.reduce(0) { max($0, abs($1)) }), .leastNormalMagnitude)
        var error = (reference: 0.0, simulation: 0.0)
        var compared = false
        for row in 0..<rows {
            let lse = result.logSumExp[row]
            var nan = 0, zero = 0
            var rowError = (reference: 0.0, simulation: 0.0)
            for i in (row * d)..<((row + 1) * d) {
                let o = result.output[i]
                if o.isNaN { nan += 1 }
                if o == 0 { zero += 1 }
                rowError.reference = max(rowError.reference, abs(Double(o) - reference[i]))
                if let simulated { rowError.simulation = max(rowError.simulation, abs(Double(o) - Double(simulated[i]))) }
            }
            if nanRows[row] {
                #expect(nan == d && lse.isNaN, "\(c): row \(row) must be NaN")
            } else if p.visibleKeys(row: row % p.queryLength) == 0 {
                #expect(zero == d && lse == -.infinity, "\(c): row \(row) sees no key")
            } else {
                #expect(nan == 0 && !lse.isNaN, "\(c): row \(row) must not be NaN")
                error = (max(error.reference, rowError.reference / unit), max(error.simulation, rowError.simulation / unit))
                compared = true
            }
        }
        if let bound = referenceTolerance[c.method] {
            #expect(error.reference <= bound, "\(c): |O − R| reaches \(error.reference) × max|V|")
        }
        if let bound = simulationTolerance[c.method] {
            #expect(error.simulation <= bound, "\(c): |O − S| reaches \(error.simulation) × max|V|")
        }
        return compared
    }
}
