// Decode attention on the paged INT8 KV cache (docs/SCHEMES.md, "The INT8 KV cache"): a few
// new query tokens per sequence against its cached keys and values, block by block of 128
// keys exactly as the CPU oracle (PagedKVCache.decode) computes them.
//
// Two kernels, one module:
//   intfa_decode_int8_…    grid (splits, Hkv, B), 128 threads. A CTA takes one sequence's KV
//                          head and one split of its keys (splitKeys keys, a multiple of 128),
//                          with every query row that reads that KV head (the G = H / Hkv query
//                          heads × Nq tokens, at most INTFA_DECODE_ROWS): each page is read
//                          once for all of them. It quantizes its Q rows itself and writes the
//                          split's normalized output and log-sum-exp (fp32) to the partials.
//   intfa_decode_combine_… one warp per query row: merges the splits' partials by their
//                          log-sum-exps into the output (fp16/bf16) and the log-sum-exp.
// Memory-bound by design: per key a thread reads its K and V rows (D bytes each, whole
// 16-byte pieces) and two scales; Q·Kᵀ and P·V are 4-byte integer dot products (dp4a).
//
// Compile-time options (NVRTC -D), all required:
//   INTFA_HEAD_DIM     a multiple of 16 up to 256
//   INTFA_DECODE_ROWS  query rows per CTA at most (G · Nq)
//   INTFA_INPUT_BF16   Q: 0 fp16, 1 bf16;  INTFA_OUT_BF16  output: 0 fp16, 1 bf16
// Kernel names spell them; see DecodeKernelDescriptor.swift.
#include "params.cuh"
#include "input_type.cuh"
#include "variant_name.cuh"

#if !defined(INTFA_HEAD_DIM) || !defined(INTFA_DECODE_ROWS) || !defined(INTFA_DECODE_BLOCK)
#error "the host passes the head dim, the rows per CTA and the key block (DecodeKernelDescriptor.compileOptions)"
#endif
// intfa_decode_int8_d<D>_r<rows>_<f16|bf16 Q>_<f16|bf16 out>, and …_combine_… alike.
#define INTFA_DECODE_NAME(stage)                                                                             \
    INTFA_CAT(INTFA_CAT(INTFA_CAT(INTFA_CAT(INTFA_CAT(stage, INTFA_HEAD_DIM), _r), INTFA_DECODE_ROWS),          \
                        INTFA_CAT(_, INTFA_IN_SUFFIX)), INTFA_OUT_NAME)

namespace {
constexpr int kHeadDim = INTFA_HEAD_DIM;
constexpr int kMaxRows = INTFA_DECODE_ROWS;
constexpr int kBlock = INTFA_DECODE_BLOCK;  // keys per P block, fixed by the scheme
constexpr int kThreads = 128;               // one key of the block per thread
constexpr int kWarps = kThreads / 32;
constexpr int kWords = kHeadDim / 4;        // 4-byte words of a K or V row
// Output elements (row, channel) per thread: element e of thread t is t + kThreads · e.
constexpr int kOutPerThread = (kMaxRows * kHeadDim + kThreads - 1) / kThreads;
static_assert(kBlock == kThreads, "one key of a block per thread");
static_assert(kHeadDim % 16 == 0 && kHeadDim <= 256, "head dims: multiples of 16 up to 256");
static_assert(kMaxRows >= 1 && kMaxRows <= 32, "1 to 32 query rows per CTA");
}  // namespace

// u8 · s8 dot product of four byte pairs, accumulated.
static INTFA_DEVICE int dot_u8s8(intfa_u32 p, int v, int acc) {
    int result;
    asm("dp4a.u32.s32 %0, %1, %2, %3;" : "=r"(result) : "r"(p), "r"(v), "r"(acc));
    return result;
}

// s8 · s8 dot product of four byte pairs, accumulated.
static INTFA_DEVICE int dot_s8s8(int k, int q, int acc) {
    int result;
    asm("dp4a.s32.s32 %0, %1, %2, %3;" : "=r"(result) : "r"(k), "r"(q), "r"(acc));
    return result;
}

static INTFA_DEVICE float warp_max(float x) {
    for (int offset = 16; offset > 0; offset /= 2) x = fmaxf(x, __shfl_xor_sync(0xFFFFFFFFu, x, offset));
    return x;
}

static INTFA_DEVICE float warp_sum(float x) {
    for (int offset = 16; offset > 0; offset /= 2) x += __shfl_xor_sync(0xFFFFFFFFu, x, offset);
    return x;
}

extern "C" __global__ void __launch_bounds__(kThreads) INTFA_DECODE_NAME(intfa_decode_int8_d)(const DecodeParams p) {
    __shared__ __align__(16) int queryWords[kMaxRows][kWords];  // s8 Q codes, four per word
    __shared__ float queryScale[kMaxRows];                       // qs = sQ · sm·L
    __shared__ int visibleKeys[kMaxRows];
    __shared__ __align__(16) intfa_u32 probabilityWords[kMaxRows][kBlock / 4];  // u8 P codes, four keys per word
    __shared__ __align__(16) int valueWords[kHeadDim][kBlock / 4 + 1];        // Vt: four keys of a channel per word
    __shared__ float partial[3][kWarps][kMaxRows];               // per-warp max, sum of p, max of u
    __shared__ float rowMax[kMaxRows], rowSum[kMaxRows], rowAlpha[kMaxRows], rowWeight[kMaxRows];

    const int split = blockIdx.x, kvHead = blockIdx.y, batch = blockIdx.z;
    const int thread = threadIdx.x, warp = thread / 32, lane = thread % 32;
    const int queryLength = (int)p.queryLength, group = (int)(p.heads / p.kvHeads);
    const int rows = group * queryLength;
    const int length = ((const int*)p.lengths)[batch];
    const int first = split * (int)p.splitKeys;
    const int last = min(first + (int)p.splitKeys, length);

    // ---- Q: row r is token r % Nq of query head kvHead · G + r / Nq, coded per token.
    for (int r = warp; r < rows; r += kWarps) {
        const int head = kvHead * group + r / queryLength, token = r % queryLength;
        const intfa_u16* q = (const intfa_u16*)p.query + batch * p.qStrideBatch + token * p.qStrideToken + head * p.qStrideHead;
        float values[(kHeadDim + 31) / 32];
        float amax = 0.0f;
#pragma unroll
        for (int i = 0; i < (kHeadDim + 31) / 32; ++i) {
            const int c = lane + 32 * i;
            values[i] = c < kHeadDim ? input_to_float(q[c]) : 0.0f;
            amax = fmaxf(amax, fabsf(values[i]));
        }
        amax = warp_max(amax);
        const float inverse = intfa_inverse_scale(amax, 127.0f);
        intfa_s8* codes = (intfa_s8*)queryWords[r];
#pragma unroll
        for (int i = 0; i < (kHeadDim + 31) / 32; ++i) {
            const int c = lane + 32 * i;
            if (c < kHeadDim) codes[c] = (intfa_s8)intfa_encode_s8(values[i], inverse);
        }
        if (lane == 0) {
            queryScale[r] = __fmul_rn(__fdiv_rn(amax, 127.0f), p.softmaxScaleLog2);
            // Causal: token i of Nq sees keys j <= n - Nq + i; else every cached key.
            visibleKeys[r] = p.causal ? max(length - queryLength + token + 1, 0) : length;
            rowMax[r] = kNegativeInfinity;
            rowSum[r] = 0.0f;
        }
    }
    float output[kOutPerThread];
#pragma unroll
    for (int e = 0; e < kOutPerThread; ++e) output[e] = 0.0f;
    __syncthreads();

    const int* blockTable = (const int*)p.blockTable + (intfa_i64)batch * p.maxPages;
    const int pageSize = (int)p.pageSize;
    for (int key0 = first; key0 < last; key0 += kBlock) {
        // ---- This thread's key: its K row against every Q row, its V row into Vt.
        const int key = key0 + thread;
        bool valid = key < last;
        float score[kMaxRows];
        float valueScale = 0.0f;
        {
            intfa_i64 slot = 0;
            if (valid) {
                const int entry = key / pageSize;
                const int page = entry < p.maxPages ? blockTable[entry] : -1;
                valid = page >= 0 && page < p.pageCount;  // an entry outside the pool: not read
                slot = valid ? ((intfa_i64)page * p.kvHeads + kvHead) * pageSize + key % pageSize : 0;
            }
            const float keyScale = valid ? ((const float*)p.keyScales)[slot] : 0.0f;
            valueScale = valid ? ((const float*)p.valueScales)[slot] : 0.0f;
            const int4* keyRow = (const int4*)((const intfa_s8*)p.keyCodes + slot * kHeadDim);
            const int4* valueRow = (const int4*)((const intfa_s8*)p.valueCodes + slot * kHeadDim);
            int acc[kMaxRows];
#pragma unroll
            for (int r = 0; r < kMaxRows; ++r) acc[r] = 0;
#pragma unroll
            for (int w4 = 0; w4 < kWords / 4; ++w4) {
                const int4 k4 = valid ? keyRow[w4] : make_int4(0, 0, 0, 0);
                const int4 v4 = valid ? valueRow[w4] : make_int4(0, 0, 0, 0);
                const int kw[4] = {k4.x, k4.y, k4.z, k4.w}, vw[4] = {v4.x, v4.y, v4.z, v4.w};
#pragma unroll
                for (int e = 0; e < 4; ++e) {
#pragma unroll
                    for (int r = 0; r < kMaxRows; ++r) {
                        if (r < rows) acc[r] = dot_s8s8(kw[e], queryWords[r][4 * w4 + e], acc[r]);
                    }
                    // Vt: channel c's byte of this key at byte (thread % 4) of word thread / 4.
#pragma unroll
                    for (int b = 0; b < 4; ++b) {
                        ((intfa_s8*)valueWords[16 * w4 + 4 * e + b])[thread] = (intfa_s8)(vw[e] >> (8 * b));
                    }
                }
            }
#pragma unroll
            for (int r = 0; r < kMaxRows; ++r) {
                const bool seen = valid && r < rows && key < visibleKeys[r];
                score[r] = seen ? __fmul_rn((float)acc[r], __fmul_rn(queryScale[r], keyScale)) : kNegativeInfinity;
            }
        }
        // ---- Block maximum per row, the new running maximum, P and u = P · sV.
#pragma unroll
        for (int r = 0; r < kMaxRows; ++r) {
            const float m = warp_max(score[r]);
            if (lane == 0 && r < rows) partial[0][warp][r] = m;
        }
        __syncthreads();
        float probability[kMaxRows];
#pragma unroll
        for (int r = 0; r < kMaxRows; ++r) {
            if (r >= rows) { probability[r] = 0.0f; continue; }
            float blockMax = partial[0][0][r];
#pragma unroll
            for (int w = 1; w < kWarps; ++w) blockMax = fmaxf(blockMax, partial[0][w][r]);
            const float newMax = fmaxf(rowMax[r], blockMax);
            probability[r] = score[r] == kNegativeInfinity ? 0.0f : intfa_exp2(__fsub_rn(score[r], newMax));
            const float sum = warp_sum(probability[r]);
            const float reference = warp_max(__fmul_rn(probability[r], valueScale));
            if (lane == 0) {
                partial[1][warp][r] = sum;
                partial[2][warp][r] = reference;
            }
        }
        __syncthreads();
        if (thread < rows) {
            const int r = thread;
            float blockMax = partial[0][0][r], sum = partial[1][0][r], reference = partial[2][0][r];
#pragma unroll
            for (int w = 1; w < kWarps; ++w) {
                blockMax = fmaxf(blockMax, partial[0][w][r]);
                sum += partial[1][w][r];
                reference = fmaxf(reference, partial[2][w][r]);
            }
            const float oldMax = rowMax[r], newMax = fmaxf(oldMax, blockMax);
            const float alpha = oldMax == kNegativeInfinity ? 0.0f : intfa_exp2(__fsub_rn(oldMax, newMax));
            rowAlpha[r] = alpha;
            rowWeight[r] = __fdiv_rn(reference, 255.0f);
            rowSum[r] = rowSum[r] * alpha + sum;
            rowMax[r] = newMax;
            partial[2][0][r] = reference;  // the block's r, for the codes below
        }
        __syncthreads();
        // ---- P codes: rne(u · 255 / r), V's per-token scale folded in (u8).
#pragma unroll
        for (int r = 0; r < kMaxRows; ++r) {
            if (r >= rows) continue;
            const float reference = partial[2][0][r];
            const float inverse = reference > 0.0f ? __fdiv_rn(255.0f, reference) : 0.0f;
            const float code = rintf(fminf(__fmul_rn(__fmul_rn(probability[r], valueScale), inverse), 255.0f));
            ((intfa_u8*)probabilityWords[r])[thread] = (intfa_u8)code;
        }
        __syncthreads();
        // ---- P·V: o = o · alpha + (r / 255) · Σ_j P_j · V_j[c], integer sums over the block.
#pragma unroll
        for (int e = 0; e < kOutPerThread; ++e) {
            const int index = thread + kThreads * e;
            const int r = index / kHeadDim, c = index % kHeadDim;
            if (r >= rows) continue;
            int sum = 0;
#pragma unroll 8
            for (int w = 0; w < kBlock / 4; ++w) sum = dot_u8s8(probabilityWords[r][w], valueWords[c][w], sum);
            output[e] = output[e] * rowAlpha[r] + rowWeight[r] * (float)sum;
        }
        __syncthreads();
    }

    // ---- The split's normalized output and log-sum-exp (natural log; −∞ and 0 without a key).
    const intfa_i64 slice = ((intfa_i64)split * p.batch + batch) * p.heads;
#pragma unroll
    for (int e = 0; e < kOutPerThread; ++e) {
        const int index = thread + kThreads * e;
        const int r = index / kHeadDim, c = index % kHeadDim;
        if (r >= rows) continue;
        const int head = kvHead * group + r / queryLength, token = r % queryLength;
        const float l = rowSum[r];
        ((float*)p.partialOut)[((slice + head) * queryLength + token) * kHeadDim + c] = l > 0.0f ? output[e] / l : 0.0f;
    }
    if (thread < rows) {
        const int r = thread, head = kvHead * group + r / queryLength, token = r % queryLength;
        const float l = rowSum[r];
        ((float*)p.partialLse)[(slice + head) * queryLength + token] =
            l > 0.0f ? __fdiv_rn(rowMax[r] + log2f(l), INTFA_LOG2E) : kNegativeInfinity;
    }
}

// One warp per query row (b, h, i): out = Σ_s e^(lse_s − m) · O_s / Σ_s e^(lse_s − m), lse =
// m + log Σ_s e^(lse_s − m) with m the largest; a row no split saw gives 0 and −∞.
extern "C" __global__ void __launch_bounds__(128) INTFA_DECODE_NAME(intfa_decode_combine_d)(const DecodeParams p) {
    const intfa_i64 rows = p.batch * p.heads * p.queryLength;
    const intfa_i64 row = (intfa_i64)blockIdx.x * 4 + threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    if (row >= rows) return;
    const int splits = (int)p.splits;
    const intfa_i64 splitStride = rows;
    // A split that saw a token stored with NaN scales (kv_append.cu) has a NaN log-sum-exp:
    // the row becomes NaN rather than losing it to fmaxf.
    float m = kNegativeInfinity;
    bool poisoned = false;
    for (int s = 0; s < splits; ++s) {
        const float lse = ((const float*)p.partialLse)[s * splitStride + row];
        poisoned |= lse != lse;
        m = fmaxf(m, lse);
    }
    float total = 0.0f;
    float values[(kHeadDim + 31) / 32];
#pragma unroll
    for (int i = 0; i < (kHeadDim + 31) / 32; ++i) values[i] = 0.0f;
    if (m != kNegativeInfinity) {
        for (int s = 0; s < splits; ++s) {
            const float weight = expf(((const float*)p.partialLse)[s * splitStride + row] - m);
            total += weight;
            const float* part = (const float*)p.partialOut + (s * splitStride + row) * kHeadDim;
#pragma unroll
            for (int i = 0; i < (kHeadDim + 31) / 32; ++i) {
                const int c = lane + 32 * i;
                if (c < kHeadDim) values[i] += weight * part[c];
            }
        }
    }
    const intfa_i64 token = row % p.queryLength, bh = row / p.queryLength;
    const intfa_i64 head = bh % p.heads, batch = bh / p.heads;
    intfa_u16* out = (intfa_u16*)p.out + batch * p.oStrideBatch + token * p.oStrideToken + head * p.oStrideHead;
    const float inverse = total > 0.0f ? 1.0f / total : 0.0f;
#pragma unroll
    for (int i = 0; i < (kHeadDim + 31) / 32; ++i) {
        const int c = lane + 32 * i;
        if (c >= kHeadDim) continue;
        const float value = poisoned ? kQuietNaN : values[i] * inverse;
#if INTFA_OUT_BF16
        out[c] = (intfa_u16)(intfa_pack_bf162(value, 0.0f) & 0xFFFFu);
#else
        out[c] = intfa_float_to_half(value);
#endif
    }
    if (lane == 0 && p.lse != 0) ((float*)p.lse)[row] = poisoned ? kQuietNaN : m == kNegativeInfinity ? m : m + logf(total);
}
