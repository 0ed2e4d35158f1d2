import CUDADriver
import Foundation
import IntFlashAttention
import Testing

/// Every kernel variant the library can launch compiles for sm_80, sm_90 and (the wgmma
/// kernels) sm_90a, and ptxas keeps it in registers without serializing its wgmma
/// instructions: a spill or a serialized wgmma is a silent slowdown that only a GPU benchmark
/// would otherwise show, so it fails here, on machines without a GPU.
@Suite(.enabled(if: NVRTCForTests.shouldRun, "NVRTC not found; set INTFA_NVRTC or INTFA_REQUIRE_NVRTC=1"))
struct KernelCompileTests {
    /// What compiling one variant gave: its ptxas line, or why there is none.
    private enum Outcome: Sendable {
        case compiled(KernelResourceUsage, serializationWarnings: Int)
        case noReport(log: String)
        case failed(String)
    }

    @Test(arguments: ["sm_80", "sm_90", "sm_90a"])
    func everyVariantCompilesWithoutSpills(arch: String) async throws {
        let cache = KernelCache(compiler: try NVRTCForTests.compiler(), directory: nil)
        // sm_90a adds the wgmma kernels; the rest compile there as for sm_90, so only they are
        // compiled for it here.
        let variants = KernelRegistry.allVariants(arch: arch).filter { arch != "sm_90a" || $0 is HopperKernelDescriptor }
        #expect(!variants.isEmpty)

        // One child task per variant: NVRTC calls block, so the group keeps every thread of
        // the cooperative pool (one per core) compiling. Both architectures: about 17 s on 2
        // cores, against about 30 s of CPU time one at a time.
        let outcomes = await withTaskGroup(of: (Int, Outcome).self) { group in
            for (index, variant) in variants.enumerated() {
                group.addTask { (index, Self.compile(variant, cache: cache)) }
            }
            var outcomes = [Outcome?](repeating: nil, count: variants.count)
            for await (index, outcome) in group { outcomes[index] = outcome }
            return outcomes
        }

        for (variant, outcome) in zip(variants, outcomes) {
            switch outcome {
            case let .compiled(usage, serializationWarnings):
                #expect(usage.registers > 0, "\(variant)")
                #expect(serializationWarnings == 0, "\(variant): ptxas serialized its wgmma instructions")
                #expect(usage.spillStoreBytes == 0, "\(variant): \(usage.registers) registers")
                #expect(usage.spillLoadBytes == 0, "\(variant): \(usage.registers) registers")
            case let .noReport(log):
                Issue.record("\(variant): ptxas reported nothing for the kernel; log:\n\(log)")
            case let .failed(message):
                Issue.record("\(variant): \(message)")
            case nil:
                Issue.record("\(variant): its compile task returned no result")
            }
        }
    }

    private static func compile(_ variant: any KernelVariant, cache: KernelCache) -> Outcome {
        do {
            let kernel = try cache.kernel(for: try variant.compilationRequest())
            guard let usage = kernel.report[variant.kernelName] else { return .noReport(log: kernel.log) }
            return .compiled(usage, serializationWarnings: PtxasReport.wgmmaSerializationWarnings(in: kernel.log))
        } catch {
            return .failed("\(error)")
        }
    }
}
