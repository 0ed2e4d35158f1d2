// Hopper (sm_90a) primitives as inline PTX: warpgroup MMA, shared-memory matrix
// descriptors, mbarriers, TMA and bulk copies, register reallocation, named barriers.
// NVRTC has no CUDA headers here, so each instruction is written out once in this file.
#pragma once
#include "common.cuh"
#include "hopper_params.cuh"

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900

// ---------------------------------------------------------------------------------------
// Shared-memory matrix descriptors (PTX ISA, "Matrix Descriptor Format"): start address,
// leading and stride byte offsets (all >> 4), and the swizzle mode in bits 62-63
// (1: 128-byte, 2: 64-byte, 3: 32-byte). Tiles are aligned to their swizzle repeat, so the
// base offset (bits 49-51) is 0. For the K-major swizzled tiles used here the leading byte
// offset is unused (encoded as 1) and the stride byte offset is 8 rows.

enum IntfaSwizzle { kIntfaSwizzle128B = 1, kIntfaSwizzle64B = 2, kIntfaSwizzle32B = 3 };

// The descriptor's swizzle mode for a swizzle of `bytes` (128, 64 or 32), as the host's tensor
// map names it.
constexpr int intfa_swizzle_mode(int bytes) {
    return bytes == 128 ? kIntfaSwizzle128B : bytes == 64 ? kIntfaSwizzle64B : kIntfaSwizzle32B;
}

INTFA_DEVICE intfa_u64 intfa_matrix_descriptor(intfa_u32 sharedAddress, intfa_u32 strideBytes, int swizzle) {
    return (intfa_u64)((sharedAddress & 0x3FFFF) >> 4) | ((intfa_u64)1 << 16) |
           ((intfa_u64)(strideBytes >> 4) << 32) | ((intfa_u64)swizzle << 62);
}

// ---------------------------------------------------------------------------------------
// Warpgroup MMA. Every call below is issued by all 128 threads of a warpgroup. The
// accumulator fragment of m64nN (warp w of the group, lane l, g = l/4, t = l%4):
//   d[4j + e] is row 16w + g + 8·(e >> 1), column 8j + 2t + (e & 1)
// and the 8-bit A fragment of m64k32: byte b of a[r] is row 16w + g + 8·(r & 1),
// k 16·(r >> 1) + 4t + b. Both equal the mma.sync m16n8k32 fragments of warp w.

INTFA_DEVICE void intfa_wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
INTFA_DEVICE void intfa_wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int Pending>
INTFA_DEVICE void intfa_wgmma_wait() { asm volatile("wgmma.wait_group.sync.aligned %0;\n" :: "n"(Pending) : "memory"); }

// Keeps the compiler from moving reads or writes of an accumulator register across a
// wgmma issue or wait (the asm statements themselves are ordered: all are volatile).
template <typename T, int N>
INTFA_DEVICE void intfa_fence_registers(T (&r)[N]) {
#pragma unroll
    for (int i = 0; i < N; ++i) asm volatile("" : "+r"(r[i]) :: "memory");
}

// Accumulator operands of a wgmma: 32 registers from d[base].
#define INTFA_WGMMA_D32(d, base)                                                                       \
    "+r"(d[base + 0]), "+r"(d[base + 1]), "+r"(d[base + 2]), "+r"(d[base + 3]), "+r"(d[base + 4]),     \
    "+r"(d[base + 5]), "+r"(d[base + 6]), "+r"(d[base + 7]), "+r"(d[base + 8]), "+r"(d[base + 9]),     \
    "+r"(d[base + 10]), "+r"(d[base + 11]), "+r"(d[base + 12]), "+r"(d[base + 13]), "+r"(d[base + 14]), \
    "+r"(d[base + 15]), "+r"(d[base + 16]), "+r"(d[base + 17]), "+r"(d[base + 18]), "+r"(d[base + 19]), \
    "+r"(d[base + 20]), "+r"(d[base + 21]), "+r"(d[base + 22]), "+r"(d[base + 23]), "+r"(d[base + 24]), \
    "+r"(d[base + 25]), "+r"(d[base + 26]), "+r"(d[base + 27]), "+r"(d[base + 28]), "+r"(d[base + 29]), \
    "+r"(d[base + 30]), "+r"(d[base + 31])
#define INTFA_WGMMA_D32_TEXT                                                                           \
    "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "                          \
    "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, "

// The 64 accumulator operands of an m64n128 wgmma, %0…%63.
#define INTFA_WGMMA_D64_TEXT                                                                           \
    "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "                          \
    "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "                 \
    "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "                 \
    "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "

// S += Q·Kᵀ for 128 keys with both operands from shared memory (descriptors).
template <int Accumulate>
INTFA_DEVICE void intfa_wgmma_m64n128k32_s8s8_shared(intfa_s32 (&d)[64], intfa_u64 a, intfa_u64 b) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n128k32.s32.s8.s8 " INTFA_WGMMA_D64_TEXT "%64, %65, p;\n}\n"
                 : INTFA_WGMMA_D32(d, 0), INTFA_WGMMA_D32(d, 32)
                 : "l"(a), "l"(b), "n"(Accumulate));
}

// O += P·V for D = 64: A (P, u8) from registers, B (Vt in excess-128 form, u8) from shared
// memory.
template <int Accumulate>
INTFA_DEVICE void intfa_wgmma_m64n64k32_u8u8(intfa_s32 (&d)[32], const intfa_u32 (&a)[4], intfa_u64 b) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k32.s32.u8.u8 " INTFA_WGMMA_D32_TEXT "{%32, %33, %34, %35}, %36, p;\n}\n"
                 : INTFA_WGMMA_D32(d, 0)
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "n"(Accumulate));
}

// O += P·V for D = 128.
template <int Accumulate>
INTFA_DEVICE void intfa_wgmma_m64n128k32_u8u8(intfa_s32 (&d)[64], const intfa_u32 (&a)[4], intfa_u64 b) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k32.s32.u8.u8 "
        INTFA_WGMMA_D64_TEXT "{%64, %65, %66, %67}, %68, p;\n}\n"
        : INTFA_WGMMA_D32(d, 0), INTFA_WGMMA_D32(d, 32)
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "n"(Accumulate));
}

// Orders this thread's ordinary shared-memory writes before later reads of the same bytes by
// the async proxy (wgmma operands, TMA).
INTFA_DEVICE void intfa_fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }

// ---------------------------------------------------------------------------------------
// mbarriers (shared memory, 8 bytes each).

INTFA_DEVICE void intfa_mbarrier_init(intfa_u32 barrier, int count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" :: "r"(barrier), "r"(count) : "memory");
}

// Makes the initialised barriers visible to the async proxy (TMA) and the other threads.
INTFA_DEVICE void intfa_fence_barrier_init() { asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory"); }

INTFA_DEVICE void intfa_mbarrier_arrive(intfa_u32 barrier) {
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" :: "r"(barrier) : "memory");
}

// Arrives and announces `bytes` of asynchronous transactions the phase must also wait for.
INTFA_DEVICE void intfa_mbarrier_arrive_expect_tx(intfa_u32 barrier, intfa_u32 bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" :: "r"(barrier), "r"(bytes) : "memory");
}

// Waits until the phase with parity `parity` has completed.
INTFA_DEVICE void intfa_mbarrier_wait(intfa_u32 barrier, intfa_u32 parity) {
    asm volatile(
        "{\n.reg .pred done;\n"
        "WAIT_%=:\n"
        "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
        "@!done bra WAIT_%=;\n}\n" :: "r"(barrier), "r"(parity) : "memory");
}

// ---------------------------------------------------------------------------------------
// TMA and bulk copies, completing on an mbarrier.

// A 4-D tile of `map` at coordinates (c0 innermost … c3) into shared memory. Boxes that
// reach past the tensor are zero-filled (and still count their full size).
INTFA_DEVICE void intfa_tma_load_4d(intfa_u32 destination, const IntfaTensorMap* map, intfa_u32 barrier,
                                    int c0, int c1, int c2, int c3) {
    asm volatile(
        "cp.async.bulk.tensor.4d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4, %5}], [%6];\n"
        :: "r"(destination), "l"((intfa_u64)map), "r"(c0), "r"(c1), "r"(c2), "r"(c3), "r"(barrier) : "memory");
}

// `bytes` (a multiple of 16, both addresses 16-byte aligned) from global to shared memory.
INTFA_DEVICE void intfa_bulk_load(intfa_u32 destination, const void* source, intfa_u32 bytes, intfa_u32 barrier) {
    asm volatile(
        "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n"
        :: "r"(destination), "l"(source), "r"(bytes), "r"(barrier) : "memory");
}

INTFA_DEVICE void intfa_prefetch_tensor_map(const IntfaTensorMap* map) {
    asm volatile("prefetch.tensormap [%0];\n" :: "l"((intfa_u64)map) : "memory");
}

// ---------------------------------------------------------------------------------------
// Warp specialization.

// Register budget of the calling warpgroup (a multiple of 8, 24…256).
template <int Registers>
INTFA_DEVICE void intfa_registers_decrease() { asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" :: "n"(Registers)); }
template <int Registers>
INTFA_DEVICE void intfa_registers_increase() { asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" :: "n"(Registers)); }

// Named barriers with an explicit thread count (id 0 is __syncthreads').
INTFA_DEVICE void intfa_named_sync(int id, int threads) {
    asm volatile("bar.sync %0, %1;\n" :: "r"(id), "r"(threads) : "memory");
}
INTFA_DEVICE void intfa_named_arrive(int id, int threads) {
    asm volatile("bar.arrive %0, %1;\n" :: "r"(id), "r"(threads) : "memory");
}

#endif  // __CUDA_ARCH__ >= 900
