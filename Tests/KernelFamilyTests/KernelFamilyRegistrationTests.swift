import CUDADriver
@testable import IntFACommands
import IntFlashAttention
import Foundation
import Testing

/// A family from outside the library (`NaiveFamily/`: its Swift and its `.cu`) joins with one
/// registry line, and everything that iterates families finds it: selection by name and
/// `INTFA_KERNEL`, `intfa compile`'s list, `intfa check`'s cases and fuzz variants.
struct KernelFamilyRegistrationTests {
    /// The one line, run once per process (the registry is global and tests run in any order).
    static let registration: Result<Void, AttentionError> = {
        do throws(AttentionError) {
            try AttentionFamilies.register(NaiveFamily())
            return .success(())
        } catch {
            return .failure(error)
        }
    }()

    @Test func selectedByNameOnly() throws {
        try Self.registration.get()
        let naive = NaiveFamily.name
        #expect(AttentionFamilies.named(naive) != nil)
        #expect(try AttentionKernelFamily.fromEnvironment(["INTFA_KERNEL": "Naive"]) == naive)
        #expect(try AttentionKernelFamily.select(method: .fp16, headDim: 64, arch: "sm_80", requested: naive) == naive)
        // A call that names no family still runs on the built-in ones.
        #expect(try AttentionKernelFamily.select(method: .fp16, headDim: 64, arch: "sm_80", requested: nil) == .mma)
        // What the family cannot run is refused with its own reason.
        #expect(throws: AttentionError.self) {
            try AttentionKernelFamily.select(method: .int8, headDim: 64, arch: "sm_80", requested: naive)
        }
        #expect(throws: AttentionError.self) { try AttentionFamilies.register(NaiveFamily()) }
    }

    @Test func compileAndCheckFindIt() throws {
        try Self.registration.get()
        let variants = KernelRegistry.allVariants(arch: "sm_80").filter { $0 is NaiveKernelDescriptor }
        #expect(variants.count == 2 * 2 * 2 * 2)  // head dims × masks × outputs × log-sum-exp
        let fuzz = FuzzVariant.all(methods: [.fp16], arch: "sm_80").filter { $0.family == NaiveFamily.name }
        #expect(fuzz.map(\.name).contains("fp16 naive D=32 causal") && fuzz.count == 2 * 2)
        let cases = CheckCase.all(quick: true, methods: [.fp16], arch: "sm_80").filter { $0.family == NaiveFamily.name }
        #expect(Set(cases.map(\.headDim)) == [32, 64])
    }

    @Test(.enabled(if: NVRTCLoader.found, "NVRTC not found"))
    func itsKernelsCompileWithoutSpills() throws {
        let cache = KernelCache(compiler: try NVRTCCompiler(), directory: nil)
        for variant in NaiveFamily().allVariants(arch: "sm_80") {
            let kernel = try cache.kernel(for: try variant.compilationRequest())
            let usage = try #require(kernel.report[variant.kernelName], "ptxas reported nothing for \(variant.kernelName)")
            #expect(usage.spillStoreBytes + usage.spillLoadBytes == 0, "\(variant.kernelName) spills")
        }
    }
}

/// Whether NVRTC loads here (the compile test is skipped where it does not, unless
/// `INTFA_REQUIRE_NVRTC` asks for it to fail instead).
enum NVRTCLoader {
    static let found: Bool = {
        let required = !(ProcessInfo.processInfo.environment["INTFA_REQUIRE_NVRTC"] ?? "").isEmpty
            && ProcessInfo.processInfo.environment["INTFA_REQUIRE_NVRTC"] != "0"
        return required || (try? NVRTCCompiler()) != nil
    }()
}
