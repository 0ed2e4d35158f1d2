import Foundation
import Testing
@testable import IntFlashAttention

struct KernelDescriptorTests {
    @Test func namesSpellTheVariant() throws {
        let d = try MMAKernelDescriptor(
            method: .int8, headDim: 128, causal: true, output: .bfloat16, writesLogSumExp: true, arch: "sm_90",
            tiles: .init(blockM: 64, stages: 2, qInRegisters: false))
        #expect(d.kernelName == "intfa_attention_int8_d128_causal_bf16_lse_m64_s2_w16")
        #expect(d.sourceFile == "attention_mma_int8.cu")
        #expect(d.compileOptions.contains("-arch=sm_90"))
        #expect(d.compileOptions.contains("-DINTFA_SMEM_BYTES=\(d.sharedMemoryBytes)"))
        #expect(d.threadsPerBlock == 128)
        // 2 × (128-key K tile 128·144 + Vt 128·144 + 16 group scales) + the 64·144 Q tile
        #expect(d.sharedMemoryBytes == 2 * (128 * 144 + 128 * 144 + 64) + 64 * 144)
        let paper = try MMAKernelDescriptor(method: .int8Paper, headDim: 128, causal: false, arch: "sm_90", tiles: d.tiles)
        #expect(paper.sourceFile == "attention.cu" && paper.compileOptions.contains("-DINTFA_METHOD=1"))
        // 2 × (64·144 + 128·80 + 256) + 64·144, then 64 Q scales and the 32-byte source pointers
        #expect(paper.sharedMemoryBytes == 2 * (64 * 144 + 128 * 80 + 256) + 64 * 144 + 64 * 4 + 32)
    }

    @Test func rowTilesAndRegisterPromiseAreSpelledAndChecked() throws {
        let tiles = MMAKernelDescriptor.Tiles(
            blockM: 128, warpRows: 32, stages: 2, qInRegisters: true, splitRowTiles: true, minBlocksPerSM: 2)
        let d = try MMAKernelDescriptor(method: .int8Paper, headDim: 64, causal: false, arch: "sm_86", tiles: tiles)
        #expect(d.kernelName == "intfa_attention_int8paper_d64_full_f16_m128_s2_w32_split_b2")
        #expect(d.threadsPerBlock == 128)
        #expect(d.compileOptions.contains("-DINTFA_WARP_ROWS=32"))
        #expect(d.compileOptions.contains("-DINTFA_SPLIT_ROW_TILES=1"))
        #expect(d.compileOptions.contains("-DINTFA_MIN_BLOCKS=2"))
        let defaults = try MMAKernelDescriptor(method: .int8Paper, headDim: 128, causal: false, arch: "sm_90")
        #expect(defaults.tiles.warpRows == 32 && defaults.tiles.minBlocksPerSM == 2)
        // 32-row warps at D = 128 keep each thread's row sums and maxima in shared memory, 32 bytes.
        #expect(defaults.sharedMemoryBytes == 3 * (64 * 144 + 128 * 80 + 256) + 128 * 144 + 128 * 4 + 32 + 128 * 32)
        // fp16 with the log-sum-exp at D = 128 keeps 16-row warps where ptxas spills the 32-row form.
        let lse = try MMAKernelDescriptor(method: .fp16, headDim: 128, causal: false, writesLogSumExp: true, arch: "sm_90")
        #expect(lse.tiles.warpRows == 16)
        let lseAmpere = try MMAKernelDescriptor(method: .fp16, headDim: 128, causal: false, writesLogSumExp: true, arch: "sm_80")
        #expect(lseAmpere.tiles.warpRows == 32)
        #expect(defaults.compileOptions.contains("-default-device"))  // the softmax forms' generic lambda
        for bad in [
            MMAKernelDescriptor.Tiles(blockM: 128, warpRows: 32, stages: 2, qInRegisters: false),  // int8: 16-row warps
            MMAKernelDescriptor.Tiles(blockM: 64, warpRows: 48, stages: 2, qInRegisters: false),
            MMAKernelDescriptor.Tiles(blockM: 96, warpRows: 32, stages: 2, qInRegisters: false),
            MMAKernelDescriptor.Tiles(blockM: 64, stages: 5, qInRegisters: false),
        ] {
            #expect(throws: AttentionError.self) {
                _ = try MMAKernelDescriptor(method: .int8, headDim: 64, causal: false, arch: "sm_90", tiles: bad)
            }
        }
    }

    @Test func tuningTilesComeFromTheEnvironment() throws {
        #expect(try MMAKernelDescriptor.tiles(fromEnvironment: [:]) == nil)
        let forced = try #require(try MMAKernelDescriptor.tiles(fromEnvironment: ["INTFA_MMA_TILES": "128,32,2,1,2"]))
        #expect(forced.blockM == 128 && forced.warpRows == 32 && forced.stages == 2)
        #expect(forced.splitRowTiles && forced.minBlocksPerSM == 2)
        #expect(forced.withDefaultQPlacement(method: .int8, headDim: 64).qInRegisters)
        #expect(!forced.withDefaultQPlacement(method: .fp16, headDim: 64).qInRegisters)
        for text in ["128,32", "128,32,2,7", "a,b,c", "64,16,2,0,9"] {
            #expect(throws: AttentionError.self) {
                _ = try MMAKernelDescriptor.tiles(fromEnvironment: ["INTFA_MMA_TILES": text])
            }
        }
    }

    @Test func fp8NeedsAda() {
        #expect(throws: AttentionError.self) {
            _ = try MMAKernelDescriptor(method: .fp8E4M3, headDim: 64, causal: false, arch: "sm_80")
        }
        #expect(MMAKernelDescriptor.allVariants(arch: "sm_80").allSatisfy { $0.method != .fp8E4M3 })
        #expect(MMAKernelDescriptor.allVariants(arch: "sm_90").contains { $0.method == .fp8E4M3 })
    }

    @Test func variantsAreDistinct() {
        let variants = MMAKernelDescriptor.allVariants(arch: "sm_90")
        #expect(Set(variants.map(\.kernelName)).count == variants.count)
        let quantizers = QuantizationKernelDescriptor.allVariants(arch: "sm_90")
        #expect(Set(quantizers.map(\.kernelName)).count == quantizers.count)
    }
}

/// The Hopper parameter blocks: tensor maps at the 64-byte-aligned offsets the header
/// declares, then the rest, and the C sizes (rounded up to 64). The compiled offsets are
/// checked too (`KernelParamsLayoutTests.mirrorsMatchTheCompiledLayout`).
struct HopperParamsLayoutTests {
    static func declaredOffsets(of structName: String) throws -> [String: Int] {
        let source = try #require(EmbeddedKernelSources.files["hopper_params.cuh"])
        let body = try #require(source.components(separatedBy: "struct \(structName) {").dropFirst().first)
        var offsets: [String: Int] = [:]
        for line in body.split(separator: "\n") {
            if line.hasPrefix("};") { break }
            let parts = line.split(separator: "//", maxSplits: 1)
            guard parts.count == 2, let offset = Int(parts[1].trimmingCharacters(in: .whitespaces)) else { continue }
            let declaration = parts[0].trimmingCharacters(in: .whitespaces)
            if let name = declaration.dropLast().split(separator: " ").last { offsets[String(name)] = offset }
        }
        return offsets
    }

    @Test func attentionParamsMatchTheHeader() throws {
        #expect(try Self.declaredOffsets(of: "HopperAttentionParams") == ["keys": 0, "values": 128, "attention": 256])
        #expect(MemoryLayout<HopperAttentionParams>.offset(of: \.keys) == 0)
        #expect(MemoryLayout<HopperAttentionParams>.offset(of: \.values) == 128)
        #expect(MemoryLayout<HopperAttentionParams>.offset(of: \.attention) == 256)
        #expect(MemoryLayout<HopperAttentionParams>.size == 512)
    }

    @Test func layoutTestParamsMatchTheHeader() throws {
        #expect(try Self.declaredOffsets(of: "HopperLayoutTestParams") == [
            "keys": 0, "values": 128, "queryCodes": 256, "probabilityCodes": 264, "scores": 272, "products": 280,
        ])
        #expect(MemoryLayout<HopperLayoutTestParams>.offset(of: \.queryCodes) == 256)
        #expect(MemoryLayout<HopperLayoutTestParams>.offset(of: \.products) == 280)
        #expect(MemoryLayout<HopperLayoutTestParams>.size == 320)
    }
}
