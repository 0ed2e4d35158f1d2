import Foundation
import Testing
@testable import CUDADriver

/// NVRTC for tests: present → use it; absent → skip, unless `INTFA_REQUIRE_NVRTC` is set
/// (CI), where absence must fail rather than silently skip the compile tests.
enum NVRTCForTests {
    static let required: Bool = {
        let value = ProcessInfo.processInfo.environment["INTFA_REQUIRE_NVRTC"] ?? ""
        return !value.isEmpty && value != "0"
    }()

    static let loaded: Result<NVRTCCompiler, CUDAError> = {
        do throws(CUDAError) { return .success(try NVRTCCompiler()) } catch { return .failure(error) }
    }()

    /// Whether NVRTC tests should run: always when required (to fail loudly), else when found.
    static var shouldRun: Bool {
        if required { return true }
        if case .success = loaded { return true }
        return false
    }

    /// The compiler, or the load error (which fails the test when NVRTC is required).
    static func compiler() throws -> NVRTCCompiler {
        try loaded.get()
    }
}

/// A fresh empty folder under the system temporary folder.
func makeTemporaryDirectory(_ label: String) throws -> String {
    let path = NSTemporaryDirectory() + "intfa-\(label)-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// Kernel sources shared by the compile and cache tests.
enum TestKernels {
    static let header = """
    #pragma once
    // One m16n8k32 INT8 tensor-core MMA with int32 accumulation.
    __device__ __forceinline__ void mma_s8(int* c, const unsigned* a, const unsigned* b) {
        asm volatile(
            "mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 "
            "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\\n"
            : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
    }
    """

    static let source = """
    #include "mma_s8.cuh"
    struct Params { const signed char* a; const signed char* b; int* out; int bias; };
    extern "C" __global__ void mma_test(Params p) {
        const unsigned* a = reinterpret_cast<const unsigned*>(p.a) + threadIdx.x * 4;
        const unsigned* b = reinterpret_cast<const unsigned*>(p.b) + threadIdx.x * 2;
        unsigned ra[4] = {a[0], a[1], a[2], a[3]};
        unsigned rb[2] = {b[0], b[1]};
        int acc[4] = {p.bias, p.bias, p.bias, p.bias};
        mma_s8(acc, ra, rb);
        for (int i = 0; i < 4; ++i) p.out[threadIdx.x * 4 + i] = acc[i];
    }
    """

    /// A syntax error on line 3 (missing semicolon on line 2 is reported at line 3).
    static let broken = """
    extern "C" __global__ void broken(int* x) {
        x[0] = 1
        undefined_call();
    }
    """
}
