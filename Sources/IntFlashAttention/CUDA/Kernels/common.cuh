// Shared helpers for the IntFlashAttention kernels.
//
// The kernels are compiled at run time by NVRTC with no CUDA headers on disk, so this file
// defines its own fixed-width integer names and reaches the conversions and tensor-core
// instructions through inline PTX. Every helper is `__device__ __forceinline__`.
#pragma once

typedef unsigned char intfa_u8;
typedef signed char intfa_s8;
typedef unsigned short intfa_u16;
typedef unsigned int intfa_u32;
typedef int intfa_s32;
typedef long long intfa_i64;
typedef unsigned long long intfa_u64;

#define INTFA_DEVICE __device__ __forceinline__

// log2(e) rounded to fp32 (0x3FB8AA3B): the `L` of docs/SCHEMES.md.
#define INTFA_LOG2E 1.44269504088896340736f

// −∞ in fp32: the softmax state of a row before its first visible key.
#define kNegativeInfinity __int_as_float(0xFF800000)
#define kPositiveInfinity __int_as_float(0x7F800000)
// A quiet NaN: the output rows and log-sum-exps that an offending input reaches.
#define kQuietNaN __int_as_float(0x7FC00000)

// ---------------------------------------------------------------------------------------
// Scalar conversions (inline PTX: no cuda_fp16.h / cuda_bf16.h under NVRTC here).

INTFA_DEVICE float intfa_half_to_float(intfa_u16 bits) {
    float value;
    asm("cvt.f32.f16 %0, %1;" : "=f"(value) : "h"(bits));
    return value;
}

INTFA_DEVICE float intfa_bf16_to_float(intfa_u16 bits) {
    // bf16 is the top half of an fp32: widening is exact.
    return __uint_as_float(((intfa_u32)bits) << 16);
}

// ---------------------------------------------------------------------------------------
// The INT8 code rule of docs/SCHEMES.md, shared by the quantizers and by the kernels that
// quantize their own Q tiles, so that both give the same bits.

// x, or 0 when it offends (|x| not below `limit`: NaN, ±Inf), which `offends` records.
INTFA_DEVICE float intfa_usable(float x, bool& offends, float limit = kPositiveInfinity) {
    const bool bad = !(fabsf(x) < limit);
    offends |= bad;
    return bad ? 0.0f : x;
}

// x, or 0 when it is NaN or ±Inf: how the channel statistics take an offending element.
INTFA_DEVICE float intfa_usable(float x) {
    bool ignored = false;
    return intfa_usable(x, ignored);
}

// inv = levels / amax, 0 when amax is 0 (so codes are 0, never NaN).
INTFA_DEVICE float intfa_inverse_scale(float amax, float levels) { return amax > 0.0f ? __fdiv_rn(levels, amax) : 0.0f; }

// The s8 code of x · inv as the low byte of a word: clamped to ±127, then rounded to nearest
// even by adding 1.5·2^23 (the code is the low byte of the sum's bits, two's complement for
// negative codes). Same result as clamping rne(x · inv) (127 is exact), without the
// conversion unit.
INTFA_DEVICE intfa_u32 intfa_encode_s8(float x, float inv) {
    const float clamped = fminf(fmaxf(__fmul_rn(x, inv), -127.0f), 127.0f);
    return __float_as_uint(__fadd_rn(clamped, 12582912.0f)) & 0xFFu;
}

INTFA_DEVICE intfa_u16 intfa_float_to_half(float value) {
    intfa_u16 bits;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(bits) : "f"(value));
    return bits;
}

// Two fp32 values to a packed pair, `low` in bits 0-15 (round to nearest even).
INTFA_DEVICE intfa_u32 intfa_pack_half2(float low, float high) {
    intfa_u32 bits;
    asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(bits) : "f"(high), "f"(low));
    return bits;
}

INTFA_DEVICE intfa_u32 intfa_pack_bf162(float low, float high) {
    intfa_u32 bits;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(bits) : "f"(high), "f"(low));
    return bits;
}

#if __CUDA_ARCH__ >= 890
// Two fp32 values to FP8 E4M3, round to nearest even, saturating to ±448; `low` in bits 0-7.
INTFA_DEVICE intfa_u16 intfa_pack_e4m3x2(float low, float high) {
    intfa_u16 bits;
    asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;" : "=h"(bits) : "f"(high), "f"(low));
    return bits;
}
#endif

// 2^x with the special-function unit (flushes subnormal results to zero; 2^-inf = +0).
INTFA_DEVICE float intfa_exp2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

// Packs four byte values (in the low byte of each 32-bit word) into one word, b0 lowest.
INTFA_DEVICE intfa_u32 intfa_pack_low_bytes(intfa_u32 b0, intfa_u32 b1, intfa_u32 b2, intfa_u32 b3) {
    return __byte_perm(__byte_perm(b0, b1, 0x0040), __byte_perm(b2, b3, 0x0040), 0x5410);
}

// The 8-bit P·V A fragment of 64 keys (two k32 chunks) from the code bits (integer in the
// low byte) at the 32 positions of the S accumulator fragment (n-tile j, element e at
// 4j + e): chunk c takes n-tiles 4c…4c+3 in the order in which the permuted Vt stores its
// keys (docs/SCHEMES.md), so no shuffles are needed. The same for mma.sync m16n8k32 and
// wgmma, whose fragments agree per warp.
INTFA_DEVICE void intfa_pack_code_fragment(const intfa_u32 (&code)[32], intfa_u32 (&a)[2][4]) {
#pragma unroll
    for (int c = 0; c < 2; ++c) {
        const int j = 16 * c;  // first accumulator position of n-tile 4c
        a[c][0] = intfa_pack_low_bytes(code[j + 0], code[j + 1], code[j + 4], code[j + 5]);
        a[c][1] = intfa_pack_low_bytes(code[j + 2], code[j + 3], code[j + 6], code[j + 7]);
        a[c][2] = intfa_pack_low_bytes(code[j + 8], code[j + 9], code[j + 12], code[j + 13]);
        a[c][3] = intfa_pack_low_bytes(code[j + 10], code[j + 11], code[j + 14], code[j + 15]);
    }
}

// ---------------------------------------------------------------------------------------
// The `int8` scheme's P codes (docs/SCHEMES.md): code = rne(255 · fp16(p)), p = 2^x ≤ 1.

// Two codes from two probabilities, in bytes 0 and 2 of the result: both rounded to fp16 (one
// F2FP), then one HFMA2 computes 255 · p + 1536 with a single rounding, which in [1024, 2048)
// is to an integer (ties to even), so each half's low byte is the code (1536 is 0x6600).
INTFA_DEVICE intfa_u32 intfa_code_pair(float low, float high) {
    intfa_u32 codes;
    asm("fma.rn.f16x2 %0, %1, %2, %3;" : "=r"(codes) : "r"(intfa_pack_half2(low, high)), "r"(0x5BF85BF8u), "r"(0x66006600u));
    return codes;
}

// Four codes, b0 lowest, from two code pairs (bytes 0 and 2 of each).
INTFA_DEVICE intfa_u32 intfa_pack_code_pairs(intfa_u32 low, intfa_u32 high) { return __byte_perm(low, high, 0x6420); }

// The 8-bit P·V A fragment of one 32-key chunk from the probabilities at the chunk's 16
// accumulator positions (n-tiles 4c…4c+3 of the S fragment, element e of n-tile j at
// 4j + e): the keys go in the order in which the permuted Vt stores them (docs/SCHEMES.md),
// so no shuffles are needed. The same for mma.sync m16n8k32 and wgmma, whose fragments agree
// per warp.
INTFA_DEVICE void intfa_pack_code_chunk(const float (&p)[16], intfa_u32 (&a)[4]) {
    a[0] = intfa_pack_code_pairs(intfa_code_pair(p[0], p[1]), intfa_code_pair(p[4], p[5]));
    a[1] = intfa_pack_code_pairs(intfa_code_pair(p[2], p[3]), intfa_code_pair(p[6], p[7]));
    a[2] = intfa_pack_code_pairs(intfa_code_pair(p[8], p[9]), intfa_code_pair(p[12], p[13]));
    a[3] = intfa_pack_code_pairs(intfa_code_pair(p[10], p[11]), intfa_code_pair(p[14], p[15]));
}

// max(a, b, c) of int32, one VIMNMX3 on sm_90 (two IMNMX before).
INTFA_DEVICE intfa_s32 intfa_max3(intfa_s32 a, intfa_s32 b, intfa_s32 c) {
#if __CUDA_ARCH__ >= 900
    return __vimax3_s32(a, b, c);
#else
    return max(max(a, b), c);
#endif
}

// max(a, b) that returns NaN when either is NaN (fmaxf returns the other operand), so a NaN
// scale reaches the row's state instead of vanishing in a maximum.
INTFA_DEVICE float intfa_max_nan(float a, float b) {
    float m;
    asm("max.NaN.f32 %0, %1, %2;" : "=f"(m) : "f"(a), "f"(b));
    return m;
}

// The reference of a block's codes: a hair above the block maximum mb (by |mb| · 2^-22, at
// least one ulp), so that fma(acc, c, −t) ≤ 0 for every key although mb = fl(acc · c) may
// round below the exact product, and no code exceeds 255.
INTFA_DEVICE float intfa_code_reference(float mb) { return __fmaf_rn(fabsf(mb), 2.384185791015625e-7f, mb); }

// Exact int32 → fp32 for |x| < 2^22. From sm_86 one full-rate I2FP; sm_80 has only the
// quarter-rate I2F, so there it takes an integer add and a float add (x added to the bits
// of 1.5·2^23 lands in the low mantissa bits).
INTFA_DEVICE float intfa_small_int_to_float(intfa_s32 x) {
#if __CUDA_ARCH__ >= 860
    return __int2float_rn(x);
#else
    return __int_as_float(x + 0x4B400000) - 12582912.0f;
#endif
}

// ---------------------------------------------------------------------------------------
// Shared memory, asynchronous copies, ldmatrix.

INTFA_DEVICE intfa_u32 intfa_smem_address(const void* pointer) {
    return (intfa_u32)__cvta_generic_to_shared(pointer);
}

// Copies 16 bytes global → shared without staging in registers. `source_bytes` < 16 fills
// the rest with zeros (0 reads nothing: out-of-range rows become zeros).
INTFA_DEVICE void intfa_cp_async_16(intfa_u32 shared_address, const void* global, intfa_u32 source_bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n"
                 :: "r"(shared_address), "l"(global), "r"(source_bytes) : "memory");
}

INTFA_DEVICE void intfa_cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }

template <int Pending>
INTFA_DEVICE void intfa_cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" :: "n"(Pending) : "memory"); }

// Four 8x8 b16 matrices; lanes 8m..8m+7 give the row addresses of matrix m, and register m
// of lane l receives row l/4, 32-bit word l%4 of matrix m.
INTFA_DEVICE void intfa_ldmatrix_x4(intfa_u32 (&r)[4], intfa_u32 address) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(address));
}

// The same, transposed: lane l receives elements (rows 2(l%4), 2(l%4)+1; column l/4).
INTFA_DEVICE void intfa_ldmatrix_x4_trans(intfa_u32 (&r)[4], intfa_u32 address) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(address));
}

// ---------------------------------------------------------------------------------------
// Tensor-core products (warp-wide mma.sync). Fragment layouts, with g = lane/4, t = lane%4:
//   8-bit m16n8k32  A: r0 (row g,   k 4t..4t+3)  r1 (row g+8, k 4t..)  r2 (row g, k 16+4t..)
//                      r3 (row g+8, k 16+4t..);  B: r0 (k 4t..4t+3, col g)  r1 (k 16+4t.., col g)
//   16-bit m16n8k16 A: r0 (row g, k 2t,2t+1)  r1 (row g+8, k 2t..)  r2 (row g, k 8+2t..)
//                      r3 (row g+8, k 8+2t..); B: r0 (k 2t,2t+1, col g)  r1 (k 8+2t.., col g)
//   C/D (both):        c0,c1 (row g, cols 2t,2t+1)  c2,c3 (row g+8, cols 2t,2t+1)

INTFA_DEVICE void intfa_mma_s8s8(intfa_s32 (&d)[4], const intfa_u32 (&a)[4], intfa_u32 b0, intfa_u32 b1) {
    asm("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 "
                 "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
                 : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

INTFA_DEVICE void intfa_mma_u8s8(intfa_s32 (&d)[4], const intfa_u32 (&a)[4], intfa_u32 b0, intfa_u32 b1) {
    asm("mma.sync.aligned.m16n8k32.row.col.s32.u8.s8.s32 "
                 "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
                 : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

INTFA_DEVICE void intfa_mma_u8u8(intfa_s32 (&d)[4], const intfa_u32 (&a)[4], intfa_u32 b0, intfa_u32 b1) {
    asm("mma.sync.aligned.m16n8k32.row.col.s32.u8.u8.s32 "
                 "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
                 : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

#if __CUDA_ARCH__ >= 890
INTFA_DEVICE void intfa_mma_e4m3(float (&d)[4], const intfa_u32 (&a)[4], intfa_u32 b0, intfa_u32 b1) {
    asm("mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32 "
                 "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
#endif

INTFA_DEVICE void intfa_mma_f16(float (&d)[4], const intfa_u32 (&a)[4], intfa_u32 b0, intfa_u32 b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
                 "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
