import Foundation
import Testing
@testable import CUDADriver

/// Compile-only tests: need NVRTC, never a GPU. Skipped without NVRTC unless
/// `INTFA_REQUIRE_NVRTC` is set, in which case a missing NVRTC fails them.
@Suite(.enabled(if: NVRTCForTests.shouldRun, "NVRTC not found; set INTFA_NVRTC or INTFA_REQUIRE_NVRTC=1"))
struct NVRTCCompileTests {
    @Test(arguments: ["sm_80", "sm_90"])
    func compilesInt8MMAKernelToCubin(arch: String) throws {
        let compiler = try NVRTCForTests.compiler()
        let kernel = try compiler.compile(
            source: TestKernels.source, name: "mma_test.cu", headers: ["mma_s8.cuh": TestKernels.header], arch: arch)
        #expect(Array(kernel.cubin.prefix(4)) == [0x7F, 0x45, 0x4C, 0x46])
        #expect(kernel.architecture == arch)
        let usage = try #require(kernel.report["mma_test"], "report: \(kernel.log)")
        #expect(usage.isEntry)
        #expect(usage.architecture == arch)
        #expect(usage.registers > 0)
        #expect(usage.spillStoreBytes == 0)
        #expect(usage.spillLoadBytes == 0)
        #expect(!usage.spills)
    }

    @Test func syntaxErrorCarriesTheLogWithTheLine() throws {
        let compiler = try NVRTCForTests.compiler()
        let error = #expect(throws: CUDAError.self) {
            try compiler.compile(source: TestKernels.broken, name: "broken.cu", arch: "sm_80")
        }
        #expect(error?.kind == .compilationFailed)
        #expect(error?.library == .nvrtc)
        #expect(error?.call == "nvrtcCompileProgram")
        #expect(error?.name == "NVRTC_ERROR_COMPILATION")
        #expect(error?.log?.contains("broken.cu(3): error") == true, "\(error?.log ?? "no log")")
    }

    @Test func templatedKernelReportsUnderItsLoweredName() throws {
        let compiler = try NVRTCForTests.compiler()
        let source = "template <int N> __global__ void scale(float* x) { x[threadIdx.x] *= N; }"
        let kernel = try compiler.compile(CompilationRequest(
            source: source, name: "scale.cu", architecture: "sm_90a", nameExpressions: ["scale<3>"]))
        let lowered = try #require(kernel.loweredNames["scale<3>"])
        #expect(lowered.hasPrefix("_Z"))
        #expect(kernel.report[lowered]?.registers ?? 0 > 0)
    }

    @Test func versionAndTargets() throws {
        let compiler = try NVRTCForTests.compiler()
        #expect(compiler.version.major >= 12)
        #expect(compiler.supportedArchitectures.contains("sm_80"))
        #expect(compiler.supportedArchitectures.contains("sm_90"))
        #expect(compiler.cacheIdentity.hasPrefix("nvrtc-"))
    }

    @Test func virtualArchitectureIsRefused() throws {
        let compiler = try NVRTCForTests.compiler()
        let error = #expect(throws: CUDAError.self) {
            try compiler.compile(source: TestKernels.source, arch: "compute_80")
        }
        #expect(error?.kind == .invalidArgument)
    }

    @Test func cacheCompilesRealKernelOnceAndReloadsFromDisk() throws {
        let compiler = try NVRTCForTests.compiler()
        let directory = try makeTemporaryDirectory("nvrtc-cache")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let request = CompilationRequest(
            source: TestKernels.source, name: "mma_test.cu", headers: ["mma_s8.cuh": TestKernels.header],
            architecture: "sm_80")
        let first = try KernelCache(compiler: compiler, directory: directory).kernel(for: request)
        let reopened = KernelCache(compiler: compiler, directory: directory)
        let second = try reopened.kernel(for: request)
        #expect(second == first)
        #expect(reopened.statistics.diskHits == 1)
        #expect(reopened.statistics.compilations == 0)
    }
}
