// Appending new tokens to the paged INT8 KV cache (docs/SCHEMES.md, "The INT8 KV cache"), as
// the CPU oracle (PagedKVCache.append) does it: K smoothed by channel means fixed at a
// sequence's first append, then K and V coded per token, never touching stored tokens.
//
// Three kernels, one module, issued in this order on one stream:
//   intfa_kv_means_…    grid (Hkv, B), 128 threads: for each sequence still empty (its length
//                       0 on the device), K's channel means over its T new tokens (summed in
//                       fp64, as the oracle).
//   intfa_kv_append_…   one warp per (sequence, new token, KV head): K − mean and V coded by
//                       the symmetric INT8 rule into the slot its block table gives.
//   intfa_kv_advance_…  one thread per sequence: length += T.
// The pages for the new tokens must be in the block table beforehand (the host allocates
// them); an entry outside the pool is skipped, never written through. A token with NaN or
// ±Inf in its K or V row gets NaN scales, so that the attention rows that see it become NaN
// instead of silently dropping it.
//
// Compile-time options (NVRTC -D): INTFA_INPUT_BF16 (0: fp16 K/V, 1: bf16). Kernel names end
// in _f16 or _bf16; see KVAppendKernelDescriptor.swift.
#include "params.cuh"
#include "input_type.cuh"

namespace {
constexpr int kMaxChannelsPerLane = 8;  // head dims up to 256
}

extern "C" __global__ void __launch_bounds__(128) INTFA_INPUT_KERNEL_NAME(intfa_kv_means)(const KVAppendParams p) {
    const int kvHead = blockIdx.x, batch = blockIdx.y;
    if (((const int*)p.lengths)[batch] != 0) return;
    const intfa_u16* keys = (const intfa_u16*)p.keys + batch * p.kStrideBatch + kvHead * p.kStrideHead;
    for (int c = threadIdx.x; c < p.headDim; c += blockDim.x) {
        double sum = 0.0;
        for (intfa_i64 t = 0; t < p.tokens; ++t) sum += (double)input_to_float(keys[t * p.kStrideToken + c]);
        ((float*)p.keyMeans)[((intfa_i64)batch * p.kvHeads + kvHead) * p.headDim + c] = (float)(sum / (double)p.tokens);
    }
}

// Codes one token row of `count` ≤ 32·kMaxChannelsPerLane values (lane l holds l, l + 32, …)
// into `codes`; returns the scale, NaN when the row offends.
static INTFA_DEVICE float code_row(const float (&x)[kMaxChannelsPerLane], bool offends, int count, intfa_s8* codes) {
    const int lane = threadIdx.x % 32;
    float amax = 0.0f;
#pragma unroll
    for (int i = 0; i < kMaxChannelsPerLane; ++i) amax = fmaxf(amax, fabsf(x[i]));
    for (int offset = 16; offset > 0; offset /= 2) amax = fmaxf(amax, __shfl_xor_sync(0xFFFFFFFFu, amax, offset));
    offends = __any_sync(0xFFFFFFFFu, offends);
    const float inverse = intfa_inverse_scale(amax, 127.0f);
#pragma unroll
    for (int i = 0; i < kMaxChannelsPerLane; ++i) {
        const int c = lane + 32 * i;
        if (c < count) codes[c] = (intfa_s8)intfa_encode_s8(x[i], inverse);
    }
    return offends ? kQuietNaN : __fdiv_rn(amax, 127.0f);
}

extern "C" __global__ void __launch_bounds__(256) INTFA_INPUT_KERNEL_NAME(intfa_kv_append)(const KVAppendParams p) {
    const intfa_i64 row = (intfa_i64)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    if (row >= p.batch * p.tokens * p.kvHeads) return;
    const int kvHead = (int)(row % p.kvHeads);
    const intfa_i64 token = row / p.kvHeads % p.tokens, batch = row / p.kvHeads / p.tokens;
    const intfa_i64 position = ((const int*)p.lengths)[batch] + token;
    const intfa_i64 entry = position / p.pageSize;
    if (entry >= p.maxPages) return;
    const int page = ((const int*)p.blockTable)[batch * p.maxPages + entry];
    if (page < 0 || page >= p.pageCount) return;
    const intfa_i64 slot = ((intfa_i64)page * p.kvHeads + kvHead) * p.pageSize + position % p.pageSize;
    const int d = (int)p.headDim;

    const intfa_u16* key = (const intfa_u16*)p.keys + batch * p.kStrideBatch + token * p.kStrideToken + kvHead * p.kStrideHead;
    const intfa_u16* value = (const intfa_u16*)p.values + batch * p.vStrideBatch + token * p.vStrideToken + kvHead * p.vStrideHead;
    const float* mean = (const float*)p.keyMeans + (batch * p.kvHeads + kvHead) * d;
    float k[kMaxChannelsPerLane], v[kMaxChannelsPerLane];
    bool keyOffends = false, valueOffends = false;
#pragma unroll
    for (int i = 0; i < kMaxChannelsPerLane; ++i) {
        const int c = lane + 32 * i;
        const bool inside = c < d;
        k[i] = inside ? __fsub_rn(intfa_usable(input_to_float(key[c]), keyOffends), mean[c]) : 0.0f;
        v[i] = inside ? intfa_usable(input_to_float(value[c]), valueOffends) : 0.0f;
    }
    const bool offends = keyOffends || valueOffends;
    const float keyScale = code_row(k, offends, d, (intfa_s8*)p.keyCodes + slot * d);
    const float valueScale = code_row(v, offends, d, (intfa_s8*)p.valueCodes + slot * d);
    if (lane == 0) {
        ((float*)p.keyScales)[slot] = keyScale;
        ((float*)p.valueScales)[slot] = valueScale;
    }
}

extern "C" __global__ void __launch_bounds__(128) INTFA_INPUT_KERNEL_NAME(intfa_kv_advance)(const KVAppendParams p) {
    const intfa_i64 batch = (intfa_i64)blockIdx.x * blockDim.x + threadIdx.x;
    if (batch < p.batch) ((int*)p.lengths)[batch] += (int)p.tokens;
}
