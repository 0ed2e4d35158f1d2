// A deliberately plain attention kernel for the `fp16` method: one thread per query row, fp32
// arithmetic, an online softmax over the keys one at a time. It shows what a kernel family
// needs and nothing more; it is not fast.
//
// Compile-time options (NVRTC -D): INTFA_HEAD_DIM (32 or 64), INTFA_CAUSAL,
// INTFA_OUT_BF16, INTFA_WRITE_LSE.
#include "params.cuh"
#include "variant_name.cuh"

#ifndef INTFA_HEAD_DIM
#error "INTFA_HEAD_DIM must be defined"
#endif
constexpr int kHeadDim = INTFA_HEAD_DIM;
static_assert(kHeadDim % 2 == 0 && kHeadDim <= 64, "an even head dim up to 64 (the output row lives in registers)");

// Non-finite inputs count as 0 (the rows they reach are made NaN after the kernel).
static INTFA_DEVICE float finite_or_zero(float x) { return fabsf(x) < kPositiveInfinity ? x : 0.0f; }
static INTFA_DEVICE float element(const intfa_u16* row, int c) { return finite_or_zero(intfa_half_to_float(row[c])); }

// Grid (ceil(Nq / 128), min(B·H, 65535)); block 128. CTAs loop over the (batch, head) pairs
// beyond the grid's y extent.
extern "C" __global__ void __launch_bounds__(128)
INTFA_CAT(INTFA_CAT(INTFA_CAT(INTFA_CAT(intfa_naive_fp16_d, INTFA_HEAD_DIM), INTFA_MASK_NAME), INTFA_OUT_NAME), INTFA_LSE_NAME)(
    const AttentionParams p) {
    const intfa_i64 row = (intfa_i64)blockIdx.x * blockDim.x + threadIdx.x;
    if (row >= p.queryLength) return;
    const intfa_i64 groupSize = p.heads / p.kvHeads;
    for (intfa_i64 bh = blockIdx.y; bh < p.batch * p.heads; bh += gridDim.y) {
        const intfa_i64 b = bh / p.heads, h = bh % p.heads, kvh = h / groupSize;
        const intfa_u16* q = (const intfa_u16*)p.q + b * p.qStrideBatch + h * p.qStrideHead + row * p.qStrideToken;
        const intfa_u16* k = (const intfa_u16*)p.k + b * p.kStrideBatch + kvh * p.kStrideHead;
        const intfa_u16* v = (const intfa_u16*)p.v + b * p.vStrideBatch + kvh * p.vStrideHead;
        // Bottom-right causal alignment: row i sees keys j <= i + Nk - Nq.
        const intfa_i64 keys = INTFA_CAUSAL ? min(p.keyLength, max(row + p.keyLength - p.queryLength + 1, (intfa_i64)0)) : p.keyLength;
        float o[kHeadDim];
#pragma unroll
        for (int c = 0; c < kHeadDim; ++c) o[c] = 0.0f;
        float m = kNegativeInfinity, l = 0.0f;
        for (intfa_i64 j = 0; j < keys; ++j) {
            float s = 0.0f;
#pragma unroll
            for (int c = 0; c < kHeadDim; ++c) s = fmaf(element(q, c), element(k + j * p.kStrideToken, c), s);
            s *= p.softmaxScaleLog2;
            const float mNew = fmaxf(m, s);
            const float alpha = exp2f(m - mNew), weight = exp2f(s - mNew);
            l = fmaf(l, alpha, weight);
#pragma unroll
            for (int c = 0; c < kHeadDim; ++c) o[c] = fmaf(o[c], alpha, weight * element(v + j * p.vStrideRow, c));
            m = mNew;
        }
        const float inverse = l > 0.0f ? 1.0f / l : 0.0f;
        intfa_u32* out = (intfa_u32*)((unsigned char*)p.out + 2 * (b * p.oStrideBatch + h * p.oStrideHead + row * p.oStrideToken));
#pragma unroll
        for (int c = 0; c < kHeadDim; c += 2) {
#if INTFA_OUT_BF16
            out[c / 2] = intfa_pack_bf162(o[c] * inverse, o[c + 1] * inverse);
#else
            out[c / 2] = intfa_pack_half2(o[c] * inverse, o[c + 1] * inverse);
#endif
        }
#if INTFA_WRITE_LSE
        ((float*)p.lse)[bh * p.queryLength + row] = l > 0.0f ? (m + log2f(l)) / INTFA_LOG2E : kNegativeInfinity;
#endif
    }
}
