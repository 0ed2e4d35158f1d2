import Testing
@testable import IntFACommands
@testable import IntFlashAttention

/// The fuzz mode's cases and judgement, without a GPU: the case stream must be reproducible
/// and reach the edges, and the comparison must fail what it is there to catch.
@Suite struct CheckFuzzTests {
    static let variant = FuzzVariant(method: .int8, family: .mma, headDim: 64, causal: true)

    @Test func casesDependOnlyOnSeedVariantAndIndex() {
        for index in [0, 17, 999] {
            #expect(FuzzCase(variant: Self.variant, index: index, seed: 42).shapeDescription
                    == FuzzCase(variant: Self.variant, index: index, seed: 42).shapeDescription)
        }
        let other = FuzzVariant(method: .fp16, family: .mma, headDim: 64, causal: true)
        let differ = (0..<20).contains {
            FuzzCase(variant: Self.variant, index: $0, seed: 42).shapeDescription
                != FuzzCase(variant: other, index: $0, seed: 42).shapeDescription
        }
        #expect(differ)
        #expect(Self.variant.key == FuzzVariant(method: .int8, family: .mma, headDim: 64, causal: true).key)
    }

    @Test func casesReachTheEdgesAndStayValid() throws {
        let cases = (0..<1000).map { FuzzCase(variant: Self.variant, index: $0, seed: 7) }
        for c in cases {
            #expect(c.heads % c.kvHeads == 0 && c.keyLength >= 1 && c.rowPadding % 8 == 0)
            #expect(max(c.batch, 1) * c.heads * c.queryLength * c.keyLength <= FuzzCase.maxScores)
            _ = try AttentionProblem(
                batch: c.batch, heads: c.heads, kvHeads: c.kvHeads, queryLength: c.queryLength, keyLength: c.keyLength,
                headDim: 64)
        }
        #expect(cases.contains { $0.batch == 0 } && cases.contains { $0.queryLength == 0 })
        #expect(cases.contains { $0.queryLength > $0.keyLength } && cases.contains { $0.queryLength < $0.keyLength })
        #expect(cases.contains { $0.keyLength == 65 } && cases.contains { $0.kvHeads != $0.heads })
        #expect(cases.contains { $0.planted != nil } && cases.contains { $0.rowPadding > 0 })
        #expect(Set(cases.map(\.layout)).count == 2 && Set(cases.map(\.input)).count == 2)
    }

    @Test func variantsCoverEveryKernel() {
        // The built-in families (a test may have registered another).
        let variants = FuzzVariant.all(methods: [.int8, .fp16], arch: "sm_90a").filter { [.wgmma, .mma].contains($0.family) }
        // int8: wgmma and mma at D = 64, 128; fp16: mma at D = 32, 64, 128; each causal and not.
        #expect(variants.count == (2 + 2 + 3) * 2)
        #expect(Set(variants.map(\.name)).count == variants.count)
    }

    @Test func comparisonFailsWhatItMustCatch() throws {
        let p = try AttentionProblem(heads: 1, queryLength: 3, keyLength: 2, headDim: 8, causal: true)
        // Row 0 sees no key (bottom-right mask, Nq > Nk); rows 1 and 2 see keys.
        let good = [Float](repeating: 0, count: 8) + [Float](repeating: 0.5, count: 16)
        let lse: [Float] = [-.infinity, 1, 2]
        let reference = good.map(Double.init)
        func judge(_ gpu: [Float], _ gpuLSE: [Float] = lse, cpu: [Float] = good) -> String? {
            var outcome = FuzzOutcome()
            outcome.compare(problem: p, gpu: gpu, gpuLogSumExp: gpuLSE, cpu: cpu, cpuLogSumExp: lse, reference: reference)
            return outcome.failure
        }
        #expect(judge(good) == nil)
        var unwritten = good
        unwritten[20] = .nan
        #expect(judge(unwritten)?.contains("NaN") == true)
        var leaked = good
        leaked[3] = 1
        #expect(judge(leaked)?.contains("sees no key") == true)
        #expect(judge(good.map { $0 * 2 })?.contains("rel L1") == true)
        #expect(judge(good, [-.infinity, 1.5, 2])?.contains("log-sum-exp") == true)
        #expect(judge(Array(good.dropLast()))?.contains("returned") == true)
        // The non-finite contract: a row NaN on the CPU must be NaN on the GPU, and only it.
        let poisoned = good.enumerated().map { $0.offset >= 16 ? Float.nan : $0.element }
        #expect(judge(poisoned, [-.infinity, 1, .nan], cpu: poisoned) == nil)
        #expect(judge(good, cpu: poisoned)?.contains("finite on the GPU") == true)
    }
}
