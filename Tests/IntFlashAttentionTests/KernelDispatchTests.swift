import Testing
@testable import IntFlashAttention

/// Which kernel family runs a problem, and how the wgmma variants are named and sized.
struct KernelDispatchTests {
    @Test func int8OnHopperPicksWGMMA() throws {
        #expect(try AttentionKernelFamily.select(method: .int8, headDim: 128, arch: "sm_90a", requested: nil) == .wgmma)
        #expect(try AttentionKernelFamily.select(method: .int8, headDim: 64, arch: "sm_90a", requested: nil) == .wgmma)
    }

    @Test func everythingElseRunsMMA() throws {
        #expect(try AttentionKernelFamily.select(method: .int8, headDim: 128, arch: "sm_80", requested: nil) == .mma)
        #expect(try AttentionKernelFamily.select(method: .int8Paper, headDim: 128, arch: "sm_90a", requested: nil) == .mma)
        #expect(try AttentionKernelFamily.select(method: .fp16, headDim: 32, arch: "sm_90a", requested: nil) == .mma)
        #expect(try AttentionKernelFamily.select(method: .int8, headDim: 128, arch: "sm_90a", requested: .mma) == .mma)
    }

    @Test func forcingWGMMAWhereItCannotRunThrows() {
        #expect(throws: AttentionError.self) {
            try AttentionKernelFamily.select(method: .int8, headDim: 128, arch: "sm_80", requested: .wgmma)
        }
        #expect(throws: AttentionError.self) {
            try AttentionKernelFamily.select(method: .fp8E4M3, headDim: 128, arch: "sm_90a", requested: .wgmma)
        }
    }

    @Test func environmentVariable() throws {
        #expect(try AttentionKernelFamily.fromEnvironment([:]) == nil)
        #expect(try AttentionKernelFamily.fromEnvironment(["INTFA_KERNEL": "MMA"]) == .mma)
        #expect(try AttentionKernelFamily.fromEnvironment(["INTFA_KERNEL": "wgmma"]) == .wgmma)
        #expect(throws: AttentionError.self) { try AttentionKernelFamily.fromEnvironment(["INTFA_KERNEL": "tensor"]) }
    }

    @Test func hopperDescriptorSpellsItsOptions() throws {
        let d = try HopperKernelDescriptor(
            headDim: 128, causal: true, output: .bfloat16, writesLogSumExp: true,
            tiles: .init(stages: 4, consumers: 2, pingPong: true))
        #expect(d.kernelName == "intfa_wgmma_int8_d128_causal_bf16_lse_c2_s4_pp")
        #expect(d.threadsPerBlock == 384)
        #expect(d.sharedMemoryBytes == 4 * 33 * 1024 + 2 * 8 * 1024 + 1024)  // ring of 128-key slots, Q tiles, alignment
        #expect(d.compileOptions.contains("-DINTFA_SMEM_BYTES=\(d.sharedMemoryBytes)"))
        let problem = try AttentionProblem(batch: 2, heads: 3, queryLength: 129, keyLength: 5, headDim: 128)
        #expect(d.tileCount(for: problem) == 2 * 3 * 2)
        #expect(d.grid(for: problem, multiprocessors: 132, policy: .persistent) == 12)
        #expect(d.grid(for: problem, multiprocessors: 5, policy: .persistent) == 5)
        #expect(d.grid(for: problem, multiprocessors: 5, policy: .perTile) == 12)
        #expect(HopperKernelDescriptor.GridPolicy.default(causal: true) == .perTile)
        #expect(HopperKernelDescriptor.GridPolicy.default(causal: false) == .persistent)
        #expect(try HopperKernelDescriptor.GridPolicy.fromEnvironment(["INTFA_WGMMA_GRID": "tiles"]) == .perTile)
        #expect(throws: AttentionError.self) { try HopperKernelDescriptor.GridPolicy.fromEnvironment(["INTFA_WGMMA_GRID": "x"]) }
    }

    @Test func queryQuantizationInsideTheKernel() throws {
        let d = try HopperKernelDescriptor(headDim: 128, causal: false, queryInput: .bfloat16)
        #expect(d.kernelName == "intfa_wgmma_int8_d128_full_f16_c2_s4_qbf16")
        #expect(d.compileOptions.contains("-DINTFA_Q_INPUT=2"))
        #expect(try HopperKernelDescriptor(headDim: 64, causal: true).compileOptions.contains("-DINTFA_Q_INPUT=0"))
        // Where it was measured to gain: D = 64, causal, short rows; not long full rows at D = 128.
        func fuses(_ d: Int, _ n: Int, causal: Bool = false) throws -> Bool {
            HopperKernelDescriptor.fusesQueryQuantization(
                problem: try AttentionProblem(heads: 1, queryLength: n, keyLength: n, headDim: d, causal: causal))
        }
        #expect(try fuses(64, 8192) && fuses(128, 8192, causal: true) && fuses(128, 1024))
        #expect(try !fuses(128, 4096) && !fuses(128, 16384))
        #expect(try HopperKernelDescriptor.fusedQueryQuantization(fromEnvironment: [:]) == nil)
        #expect(try HopperKernelDescriptor.fusedQueryQuantization(fromEnvironment: ["INTFA_WGMMA_FUSED_Q": "0"]) == false)
        #expect(throws: AttentionError.self) { try HopperKernelDescriptor.fusedQueryQuantization(fromEnvironment: ["INTFA_WGMMA_FUSED_Q": "yes"]) }
    }

    @Test func hopperDescriptorRefusesWhatItCannotRun() {
        #expect(throws: AttentionError.self) { try HopperKernelDescriptor(headDim: 256, causal: false) }
        #expect(throws: AttentionError.self) { try HopperKernelDescriptor(headDim: 128, causal: false, arch: "sm_90") }
        #expect(throws: AttentionError.self) {
            try HopperKernelDescriptor(headDim: 128, causal: false, tiles: .init(stages: 4, consumers: 3, pingPong: true))
        }
        #expect(throws: AttentionError.self) { try HopperKernelDescriptor.tiles(fromEnvironment: ["INTFA_WGMMA_TILES": "4,2"]) }
    }
}
